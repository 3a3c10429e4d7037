"""HL7 v2 orders over MLLP, end to end: parse + map + ACK per message, over real sockets.

Cases (each a throughput in messages/s, over one connection and over four):

* **full**: :class:`MllpServer` with :class:`Hl7Receiver` (parse, map to a FHIR transaction Bundle, build
  the ACK), no store.
* **stored**: the same with the real pipeline of ``dacs serve`` (validation of the mapped resources,
  then in one SQLite transaction: duplicate check, indexed upserts, order reconciliation and the raw
  message with its ACK; concurrent connections' messages share commits): what the goal of ≥ 500
  order messages/s end to end is about.
* **baseline, bare MLLP**: the same server and framing with a handler that returns a fixed ACK.

The server runs in its own process (one event loop and one writer thread: one core's worth of
Python), the client in this one; each client connection sends an ORM^O01, waits for its ACK, then
sends the next (what a RIS does). The goal is ≥ 500 order messages/s end to end on one core.

**import** (``dacs import`` of an HL7 file) runs in process: :meth:`Hl7Receiver.process_many`, 32
messages in flight sharing commits, against the same messages one at a time.

A further capability compares the in-process cost of parse+map+ACK with hl7apy's parse alone
(``find_groups=False``), the library the reference measured at 20–50 messages/s.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
import warnings
from multiprocessing.connection import Connection

from benchmarks import Result, throughput

GOAL = 500.0
_FIXED_ACK = b"MSH|^~\\&|DACS||RIS||20240101000000||ACK^O01^ACK|1|P|2.3.1\rMSA|AA|0\r"


def order_message(i: int) -> bytes:
    """A realistic IHE-style ORM^O01 v2.3.1 (new order), unique per ``i``."""
    return (
        f"MSH|^~\\&|RIS|RADIOLOGY|DACS|DOSE|20240102030405||ORM^O01|CTRL{i:08d}|P|2.3.1||||||8859/1\r"
        f"PID|1||MRN{i % 5000:06d}^^^HOSP&1.2.3.4.5&ISO^MR||Doe^Jane^Q^^Mrs||19700101|F|||"
        f"1 Main St^^Rabat^^10000^MA^H||0537000000^PRN^PH\r"
        f"PV1|1|O|RAD^CT1^^HOSP|||||1234^REFERRER^ANNA|||||||||||V{i:08d}^^^HOSP\r"
        f"ORC|NW|PLC{i:08d}^RIS|FIL{i:08d}^PACS||SC||^^^20240102100000^^R||20240102030405|||"
        f"7101^ESTRADA^JAIME^P^^DR\r"
        f"OBR|1|PLC{i:08d}^RIS|FIL{i:08d}^PACS|CTHEAD^CT Head without contrast^L|||||||||"
        f"Headache\\.br\\Rule out bleed|||7101^ESTRADA^JAIME^P^^DR||ACC{i:08d}|RP{i:08d}|SPS{i:08d}||||CT\r"
        f"ZDS|1.2.826.0.1.3680043.2.1125.{i}^100^Application^DICOM\r"
    ).encode("latin-1")


def _serve(kind: str, conn: Connection) -> None:
    """Child process: run one MLLP server until told to stop."""
    import tempfile
    from pathlib import Path

    from fhir_server.runtime import Runtime
    from fhir_server.settings import Settings
    from integrations.mllp import Hl7Receiver, MllpServer

    async def bare(raw: bytes) -> bytes:
        return _FIXED_ACK

    async def main() -> None:
        if kind == "stored":
            runtime = Runtime.open(Settings(data_dir=Path(tempfile.mkdtemp(prefix="dacs-bench-mllp-"))))
            handler = Hl7Receiver(runtime.hl7)
        else:
            handler = Hl7Receiver() if kind == "full" else bare
        server = MllpServer(handler, "127.0.0.1", 0, max_connections=16)
        conn.send(await server.start())
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)
        await server.stop()

    import logging

    logging.disable(logging.WARNING)
    asyncio.run(main())


async def _client(port: int, messages: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for message in messages:
        writer.write(b"\x0b" + message + b"\x1c\r")
        await writer.drain()
        ack = await reader.readuntil(b"\x1c\r")
        if b"MSA|A" not in ack and b"MSA|C" not in ack:
            raise RuntimeError(f"unexpected answer {ack[:80]!r}")
    writer.close()
    await writer.wait_closed()


async def _measure(port: int, connections: int, count: int, offset: int) -> float:
    batches = [[order_message(offset + c * count + i) for i in range(count)] for c in range(connections)]
    await asyncio.gather(*(_client(port, [order_message(offset - 1 - c)] * 1) for c in range(connections)))
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, batch) for batch in batches))
    return connections * count / (time.perf_counter() - start)


def _server_rates(kind: str, count: int) -> dict[int, float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(kind, child), daemon=True)
    process.start()
    try:
        port = parent.recv()
        rates = {}
        for connections, offset in ((1, 10_000_000), (4, 20_000_000)):
            rates[connections] = asyncio.run(_measure(port, connections, count, offset))
        return rates
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()


def _in_process_rates(count: int) -> tuple[float, float]:
    from hl7apy.parser import parse_message as hl7apy_parse

    from mappings.hl7v2 import AckOutcome, build_ack, process_message

    messages = [order_message(i) for i in range(count)]
    state = {"i": 0}

    def ours() -> int:
        raw = messages[state["i"] % count]
        state["i"] += 1
        result = process_message(raw)
        build_ack(result.header, AckOutcome.ACCEPT)
        return 1

    texts = [m.decode("latin-1") for m in messages]

    def hl7apy_only() -> int:
        hl7apy_parse(texts[state["i"] % count], find_groups=False)
        state["i"] += 1
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hl7apy_only()  # first parse loads the version's definitions
        baseline = throughput(hl7apy_only, min_seconds=1.0)
    return throughput(ours, min_seconds=1.0), baseline


def _import_rates(count: int) -> tuple[float, float]:
    """``dacs import`` of a file of ORMs into a fresh store: ``process_many`` (32 in flight, commits
    shared) against the same messages one at a time (one commit each)."""
    import tempfile
    from pathlib import Path

    from fhir_server.runtime import Runtime
    from fhir_server.settings import Settings
    from integrations.mllp import Hl7Receiver

    async def one_by_one(receiver: Hl7Receiver, messages: list[bytes]) -> None:
        for message in messages:
            await receiver.process(message)

    rates = []
    for offset, windowed in ((30_000_000, True), (40_000_000, False)):
        runtime = Runtime.open(Settings(data_dir=Path(tempfile.mkdtemp(prefix="dacs-bench-import-"))))
        receiver = Hl7Receiver(runtime.hl7)
        messages = [order_message(offset + i) for i in range(count)]
        start = time.perf_counter()
        asyncio.run(receiver.process_many(messages) if windowed else one_by_one(receiver, messages))
        rates.append(count / (time.perf_counter() - start))
        runtime.close()
    return rates[0], rates[1]


def run(scale: float = 1.0) -> list[Result]:
    count = max(100, int(2000 * scale))
    bare = _server_rates("bare", count)
    full = _server_rates("full", count)
    stored = _server_rates("stored", count)
    ours, hl7apy_rate = _in_process_rates(max(50, int(500 * scale)))
    imported, sequential = _import_rates(max(100, int(1000 * scale)))
    results = [
        Result("HL7 v2 over MLLP", f"ORM^O01 parse+map+ACK (no store), {n} connection{'s' if n > 1 else ''}",
               full[n], "msg/s", f"bare MLLP server (fixed ACK), {n} connection{'s' if n > 1 else ''}", bare[n])
        for n in (1, 4)
    ]
    results += [
        Result("HL7 v2 over MLLP", f"ORM^O01 parse+map+commit+ACK (SQLite), {n} connection{'s' if n > 1 else ''}",
               stored[n], "msg/s", f"bare MLLP server (fixed ACK), {n} connection{'s' if n > 1 else ''}", bare[n],
               goal=GOAL)
        for n in (1, 4)
    ]
    results.append(Result("HL7 v2 parse", "ORM^O01 parse+map+ACK in process (mappings.hl7v2)", ours, "msg/s",
                          "hl7apy parse_message only (find_groups=False)", hl7apy_rate))
    results.append(Result("HL7 v2 import", "dacs import of an ORM file: 32 messages in flight, shared commits",
                          imported, "msg/s", "the same messages one at a time", sequential))
    return results


if __name__ == "__main__":
    for r in run(0.5):
        print(f"{r.case}: {r.value:,.0f} {r.unit} vs {r.baseline_case}: {r.baseline_value:,.0f} "
              f"(ratio {r.ratio:.2f})")
