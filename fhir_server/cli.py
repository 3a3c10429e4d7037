"""The ``dacs`` command line (PRODUCT.md, "Interface contract").

Every option of ``dacs serve`` is also read from the environment as ``DACS_<NAME>``. Port 0 means
"pick a free port"; the ports actually bound are printed on start-up, one line per listener, so
scripts and tests can find them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from fhir_server.api.app import create_app
from fhir_server.runtime import Runtime
from fhir_server.settings import Settings
from integrations.mllp import Hl7Receiver, MllpServer

app = typer.Typer(help="DACS — Dose Archiving and Communication System (FHIR R4 server).", no_args_is_help=True)
_DEFAULTS = Settings.model_fields


def _opt(name: str, help_: str):  # type: ignore[no-untyped-def]
    return typer.Option(envvar=f"DACS_{name.upper()}", help=help_, show_default=True)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


async def _serve(settings: Settings) -> None:
    runtime = Runtime.open(settings)
    http_socket = bind(settings.host, settings.http_port)
    config = uvicorn.Config(create_app(settings, runtime.store), log_level="warning", access_log=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    receiver = Hl7Receiver(commit=runtime.hl7, store=runtime.hl7, application=settings.dicom_aet)
    mllp = MllpServer(receiver, settings.host, settings.mllp_port)
    mllp_port = await mllp.start()
    typer.echo(f"DACS store: {settings.store_url()}")
    typer.echo(f"DACS MLLP listening on {settings.host}:{mllp_port}")
    typer.echo(f"DACS HTTP listening on http://{settings.host}:{http_socket.getsockname()[1]}/fhir")
    try:
        await server.serve(sockets=[http_socket])
    finally:
        await mllp.stop()


@app.command()
def serve(
    data_dir: Annotated[Path, _opt("data_dir", "data directory (SQLite store, archive)")] = _DEFAULTS[
        "data_dir"].default,
    store: Annotated[str, _opt("store", "sqlite:///path or mongodb://host/db (default: SQLite in the data dir)")]
    = "",
    host: Annotated[str, _opt("host", "interface to listen on")] = _DEFAULTS["host"].default,
    http_port: Annotated[int, _opt("http_port", "FHIR HTTP port (0 = any free port)")] = _DEFAULTS[
        "http_port"].default,
    dicom_port: Annotated[int, _opt("dicom_port", "DICOM port (0 = any free port)")] = _DEFAULTS[
        "dicom_port"].default,
    dicom_aet: Annotated[str, _opt("dicom_aet", "DICOM AE title")] = _DEFAULTS["dicom_aet"].default,
    mllp_port: Annotated[int, _opt("mllp_port", "HL7 v2 MLLP port (0 = any free port)")] = _DEFAULTS[
        "mllp_port"].default,
) -> None:
    """Run the server: FHIR REST API and the HL7 v2 MLLP receiver (DICOM: see the issue notes)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(data_dir=data_dir, store=store, host=host, http_port=http_port, dicom_port=dicom_port,
                        dicom_aet=dicom_aet, mllp_port=mllp_port)
    asyncio.run(_serve(settings))


@app.command()
def version() -> None:
    """Print the DACS version."""
    from fhir_server import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
