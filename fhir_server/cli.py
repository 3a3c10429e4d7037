"""The ``dacs`` command line (PRODUCT.md, "Interface contract").

Every option of ``dacs serve`` is also read from the environment as ``DACS_<NAME>``. Port 0 means
"pick a free port"; the ports actually bound are printed on start-up, one line per listener, so
scripts and tests can find them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import warnings
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from fhir_server.api.app import create_app
from fhir_server.errors import FhirError
from fhir_server.ingest.dicom import Disposition, IngestResult
from fhir_server.ingest.evaluation_queue import all_study_ids
from fhir_server.operations.terminology import seed_terminology
from fhir_server.runtime import Runtime
from fhir_server.settings import Settings
from integrations.dicom import (
    DicomListener,
    DicomListenerConfig,
    SkippedInput,
    plan_inputs,
    read_dicom_file,
)
from integrations.dicom.files import NotImportable
from integrations.mllp import Hl7Receiver, MllpServer
from mappings.hl7v2 import AckOutcome, split_messages

app = typer.Typer(help="DACS — Dose Archiving and Communication System (FHIR R4 server).", no_args_is_help=True)
quarantine_app = typer.Typer(help="Objects kept but not mapped, and why.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")
_DEFAULTS = Settings.model_fields

DataDir = Annotated[Path, typer.Option(envvar="DACS_DATA_DIR", help="data directory (SQLite store, archive)")]
StoreUrl = Annotated[str, typer.Option(envvar="DACS_STORE",
                                       help="sqlite:///path or mongodb://host/db (default: SQLite in the data dir)")]
DEFAULT_DATA_DIR = _DEFAULTS["data_dir"].default


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _quiet_pydicom() -> None:
    """pydicom warns about every vendor quirk; the import summary reports what matters."""
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pydicom")


def _hl7_receiver(runtime: Runtime) -> Hl7Receiver:
    return Hl7Receiver(runtime.hl7, application=runtime.settings.dicom_aet)


async def _serve(settings: Settings) -> None:
    # worker processes: DICOM decoding, mapping and validation, and dose evaluation, off this core
    runtime = Runtime.open(settings, mapping_processes=1, evaluation_process=True)
    try:
        seed_terminology(runtime.service)
    except FhirError as exc:  # a broken site reference file: say which, and stop
        raise typer.BadParameter(f"reference data: {exc.diagnostics}") from None
    http_socket = bind(settings.host, settings.http_port)
    app_ = create_app(settings, runtime.service, {"dose_evaluator": runtime.evaluator,
                                                "evaluation_queue": runtime.evaluation})
    config = uvicorn.Config(app_, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    titles = frozenset(t.strip() for t in settings.dicom_calling_aets.split(",") if t.strip())
    dicom = DicomListener(DicomListenerConfig(ae_title=settings.dicom_aet, host=settings.host, port=settings.dicom_port,
                                              accepted_calling_ae_titles=titles),
                          runtime.dicom.store, runtime.dicom.mpps)
    mllp = MllpServer(_hl7_receiver(runtime), settings.host, settings.mllp_port)
    dicom_port = dicom.start()
    mllp_port = await mllp.start()
    recovery = asyncio.create_task(asyncio.to_thread(runtime.dicom.recover))  # objects a crash left unmapped
    # Everything loaded at start-up (definitions, models, reference data) is long-lived: keep it out of
    # the cyclic garbage collector's scans, which otherwise dominate the tail latency of large requests.
    gc.collect()
    gc.freeze()
    typer.echo(f"DACS store: {settings.store_url()}")
    typer.echo(f"DACS DICOM listening on {settings.host}:{dicom_port} (AE title {settings.dicom_aet})")
    typer.echo(f"DACS MLLP listening on {settings.host}:{mllp_port}")
    typer.echo(f"DACS HTTP listening on http://{settings.host}:{http_socket.getsockname()[1]}/fhir")
    try:
        await server.serve(sockets=[http_socket])
    finally:  # stop receiving, finish what was received, stop the workers, close the store
        await recovery
        await mllp.stop()
        await asyncio.to_thread(dicom.stop)
        await asyncio.to_thread(runtime.close, 60.0)
        typer.echo("DACS stopped")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (``systemctl stop``, ``docker stop``) stops the server as Ctrl-C does: through the
    ``finally`` of :func:`_serve`. uvicorn handles the signal while it serves and raises it again
    afterwards; without this handler that second delivery would end the process on the spot, before
    the store is closed and the worker processes are stopped."""
    raise SystemExit(0)


@app.command()
def serve(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreUrl = "",
    host: Annotated[str, typer.Option(envvar="DACS_HOST", help="interface to listen on")] = _DEFAULTS["host"].default,
    http_port: Annotated[int, typer.Option(envvar="DACS_HTTP_PORT", help="FHIR HTTP port (0 = any free port)")]
    = _DEFAULTS["http_port"].default,
    dicom_port: Annotated[int, typer.Option(envvar="DACS_DICOM_PORT", help="DICOM port (0 = any free port)")]
    = _DEFAULTS["dicom_port"].default,
    dicom_aet: Annotated[str, typer.Option(envvar="DACS_DICOM_AET", help="DICOM AE title")]
    = _DEFAULTS["dicom_aet"].default,
    mllp_port: Annotated[int, typer.Option(envvar="DACS_MLLP_PORT", help="HL7 v2 MLLP port (0 = any free port)")]
    = _DEFAULTS["mllp_port"].default,
) -> None:
    """Run the server: FHIR REST API, DICOM Storage SCP and HL7 v2 MLLP listener."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(data_dir=data_dir, store=store, host=host, http_port=http_port, dicom_port=dicom_port,
                        dicom_aet=dicom_aet, mllp_port=mllp_port)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    asyncio.run(_serve(settings))


def _is_hl7(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(16).lstrip(b"\xef\xbb\xbf\x0b \r\n\t")
    return head[:4] in (b"MSH|", b"FHS|", b"BHS|")


def _import_hl7(runtime: Runtime, path: Path, counts: Counter[str], problems: list[tuple[str, str]]) -> None:
    receiver = _hl7_receiver(runtime)
    batch = split_messages(path.read_bytes())
    receipts = asyncio.run(receiver.process_many(batch.messages))
    for index, receipt in enumerate(receipts, 1):
        if receipt.duplicate:
            counts["duplicate"] += 1
        elif receipt.outcome is AckOutcome.ACCEPT:
            counts["imported"] += 1
        else:
            counts["rejected"] += 1
            problems.append((f"{path} message {index}", str(receipt.error or receipt.outcome.value)))


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders (RDSR or images, DICOMDIR), HL7 files")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreUrl = "",
) -> None:
    """Import files from disk or removable media (sites without a network): archive, map, store."""
    logging.basicConfig(level=logging.WARNING)
    _quiet_pydicom()
    runtime = Runtime.open(Settings(data_dir=data_dir, store=store))
    console = Console()
    counts: Counter[str] = Counter()
    problems: list[tuple[str, str]] = []
    files = plan_inputs(paths)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("importing", total=len(files))
        for path in files:
            try:
                if _is_hl7(path):
                    _import_hl7(runtime, path, counts, problems)
                else:
                    item = read_dicom_file(path)
                    if isinstance(item, SkippedInput):
                        counts["skipped"] += 1
                        problems.append((str(item.path), item.reason))
                    else:
                        result = runtime.dicom.ingest(item)
                        counts[result.disposition.value] += 1
                        if result.disposition in (Disposition.REJECTED, Disposition.KEPT_UNMAPPED):
                            problems.append((str(path), result.reason))
            except OSError as exc:
                counts["skipped"] += 1
                problems.append((str(path), f"cannot read: {exc}"))
            progress.advance(task)
        progress.add_task("evaluating doses", total=None)
        runtime.close()
    table = Table(title=f"dacs import: {len(files)} files")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for name in ("imported", "duplicate", "superseded", "kept-unmapped", "rejected", "skipped"):
        table.add_row(name, str(counts[name]))
    console.print(table)
    for where, reason in problems:
        console.print(f"  {where}: {reason}")
    if counts["rejected"]:
        raise typer.Exit(code=1)


@app.command()
def remap(data_dir: DataDir = DEFAULT_DATA_DIR, store: StoreUrl = "") -> None:
    """Map every archived DICOM object again (after a mapping fix or reference-data update)."""
    logging.basicConfig(level=logging.WARNING)
    _quiet_pydicom()
    runtime = Runtime.open(Settings(data_dir=data_dir, store=store))
    console = Console()
    keys = runtime.archive.keys("dicom")
    changed: list[tuple[str, int]] = []
    counts: Counter[str] = Counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("remapping", total=len(keys))
        for key in keys:
            result = _reingest(runtime, key)
            counts[result.disposition.value if result else "unreadable"] += 1
            if result is not None and result.changed:
                changed.append((key, result.changed))
            progress.advance(task)
    runtime.close()
    console.print(f"remapped {len(keys)} archived objects: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    console.print(f"{len(changed)} objects changed {sum(n for _, n in changed)} resources")
    for key, n in changed:
        console.print(f"  {key}: {n} resources updated")


def _reingest(runtime: Runtime, key: str) -> IngestResult | None:
    """Map an archived DICOM object again; None when it is missing or not readable as DICOM."""
    try:
        return runtime.dicom.reingest(key)
    except NotImportable:
        return None


@app.command()
def evaluate(data_dir: DataDir = DEFAULT_DATA_DIR, store: StoreUrl = "") -> None:
    """Evaluate every stored study again (after a protocol-map, DRL or threshold change in the site's
    reference files): results and alerts are updated, never duplicated."""
    logging.basicConfig(level=logging.WARNING)
    runtime = Runtime.open(Settings(data_dir=data_dir, store=store))
    console = Console()
    ids = all_study_ids(runtime.service)
    written = findings = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=len(ids))
        for start in range(0, len(ids), 100):
            batch = ids[start:start + 100]
            for report in runtime.evaluator.evaluate_studies(batch):
                written += report.written
                findings += len(report.findings)
            progress.advance(task, len(batch))
    runtime.close()
    console.print(f"evaluated {len(ids)} studies: {written} resources written, {findings} open findings")


@quarantine_app.command("list")
def quarantine_list(data_dir: DataDir = DEFAULT_DATA_DIR, store: StoreUrl = "") -> None:
    """List quarantined objects with the reason."""
    runtime = Runtime.open(Settings(data_dir=data_dir, store=store))
    table = Table(title="quarantine")
    for col in ("kind", "key", "since", "reason"):
        table.add_column(col)
    for entry in runtime.archive.quarantined():
        table.add_row(entry.kind, entry.key, entry.since, entry.reason)
    Console().print(table)
    runtime.close()


@quarantine_app.command("retry")
def quarantine_retry(data_dir: DataDir = DEFAULT_DATA_DIR, store: StoreUrl = "") -> None:
    """Map quarantined DICOM objects again; those that now map leave the quarantine."""
    runtime = Runtime.open(Settings(data_dir=data_dir, store=store))
    counts: Counter[str] = Counter()
    for entry in runtime.archive.quarantined("dicom"):
        result = _reingest(runtime, entry.key)
        counts[result.disposition.value if result else "unreadable"] += 1
    Console().print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "quarantine is empty")
    runtime.close()


@app.command()
def version() -> None:
    """Print the DACS version."""
    from fhir_server import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
