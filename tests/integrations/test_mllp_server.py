"""MllpServer over real sockets with a raw client: framing, partial reads, pipelining, limits, TLS, fuzz."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.mllp import Hl7Receiver, MllpServer, frame
from mappings.hl7v2 import AckOutcome, parse_message
from tests.integrations.sinks import MemorySink

SB, END = b"\x0b", b"\x1c\r"


def adt(control_id: str, name: bytes = b"Doe^Jo", msh18: bytes = b"", extra: bytes = b"") -> bytes:
    return (b"MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240101||ADT^A08^ADT_A01|" + control_id.encode()
            + b"|P|2.5.1|||" + extra + b"||" + msh18 + b"\rPID|||" + control_id.encode()
            + b"^^^HOSP||" + name + b"||19700101|F\r")


class Client:
    """A raw MLLP client: writes any bytes, reads framed answers one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, ssl_context: ssl.SSLContext | None = None) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, timeout: float = 10.0) -> bytes:
        """Next framed answer, framing removed."""
        start = await asyncio.wait_for(self.reader.readexactly(1), timeout)
        assert start == SB
        data = await asyncio.wait_for(self.reader.readuntil(END), timeout)
        return data[:-2]

    async def closed_by_server(self, timeout: float = 10.0) -> bool:
        return await asyncio.wait_for(self.reader.read(), timeout) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


def msa(ack: bytes) -> tuple[str, str]:
    seg = parse_message(ack).segment("MSA")
    assert seg is not None
    return seg.get(1), seg.get(2)


@pytest.fixture
async def server() -> AsyncIterator[MllpServer]:
    srv = MllpServer(Hl7Receiver(), port=0, max_message_bytes=64 * 1024, idle_timeout=10)
    await srv.start()
    yield srv
    await srv.stop()


async def test_persistent_connection_many_messages(server: MllpServer) -> None:
    client = await Client.connect(server.bound_port)
    for i in range(50):
        await client.send(frame(adt(f"C{i}")))
        assert msa(await client.answer()) == ("AA", f"C{i}")
    await client.close()


async def test_pipelined_messages_answered_in_order(server: MllpServer) -> None:
    client = await Client.connect(server.bound_port)
    await client.send(b"".join(frame(adt(f"P{i}")) for i in range(30)))
    assert [msa(await client.answer())[1] for _ in range(30)] == [f"P{i}" for i in range(30)]
    await client.close()


async def test_byte_by_byte(server: MllpServer) -> None:
    client = await Client.connect(server.bound_port)
    for byte in frame(adt("SLOW")):
        await client.send(bytes([byte]))
    assert msa(await client.answer()) == ("AA", "SLOW")
    await client.close()


async def test_oversize_message_gets_ar_and_connection_goes_on(server: MllpServer) -> None:
    client = await Client.connect(server.bound_port)
    big = adt("BIG") + b"NTE|||" + b"x" * (100 * 1024) + b"\r"
    await client.send(frame(big) + frame(adt("AFTER")))
    ack = await client.answer()
    assert msa(ack) == ("AR", "BIG")
    err = parse_message(ack).segment("ERR")
    assert err is not None and err.get(3) == "207" and "65536 bytes" in err.get(8)
    assert msa(await client.answer()) == ("AA", "AFTER")
    await client.close()


async def test_unframed_message_is_answered_ar(server: MllpServer) -> None:
    client = await Client.connect(server.bound_port)
    await client.send(adt("NOSB") + END + frame(adt("OK")))
    ack = await client.answer()
    assert msa(ack) == ("AR", "NOSB")
    assert b"MLLP framing error: end block without start block" in ack
    assert msa(await client.answer()) == ("AA", "OK")
    await client.close()


async def test_end_block_without_cr_is_answered_ar(server: MllpServer) -> None:
    client = await Client.connect(server.bound_port)
    await client.send(SB + adt("NOCR") + b"\x1c" + b"\n" + frame(adt("NEXT")))
    assert msa(await client.answer()) == ("AR", "NOCR")
    assert msa(await client.answer()) == ("AA", "NEXT")
    await client.close()


async def test_restarted_message_is_answered_for_both(server: MllpServer) -> None:
    client = await Client.connect(server.bound_port)
    await client.send(SB + adt("CUT")[:60] + frame(adt("WHOLE")))
    assert msa(await client.answer()) == ("AR", "CUT")
    assert msa(await client.answer()) == ("AA", "WHOLE")
    await client.close()


async def test_garbage_without_msh_closes_only_that_connection(server: MllpServer) -> None:
    bad = await Client.connect(server.bound_port)
    await bad.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x1c\r")
    assert await bad.closed_by_server()
    good = await Client.connect(server.bound_port)
    await good.send(frame(adt("STILL")))
    assert msa(await good.answer()) == ("AA", "STILL")
    await good.close()


async def test_frame_without_msh_closes_connection(server: MllpServer) -> None:
    client = await Client.connect(server.bound_port)
    await client.send(frame(b"\xff\xfe not hl7 at all"))
    assert await client.closed_by_server()  # nothing to address an ACK to


@pytest.mark.parametrize(
    ("msh18", "name", "expected"),
    [
        (b"8859/1", "Müller^Jürgen".encode(), "Müller"),  # declared latin-1, sent UTF-8
        (b"UNICODE UTF-8", "Müller^Jürgen".encode("latin-1"), "Müller"),  # declared UTF-8, sent latin-1
        (b"", "Müller^Jürgen".encode("latin-1"), "Müller"),
        (b"UNICODE UTF-8", b"\xff\xfe\xfd^\xc3", "ÿþý"),  # invalid everywhere: latin-1 fallback
    ],
)
async def test_wrong_charset_is_accepted_with_fallback(msh18: bytes, name: bytes, expected: str) -> None:
    sink = MemorySink()
    async with MllpServer(Hl7Receiver(sink), port=0) as srv:
        client = await Client.connect(srv.bound_port)
        await client.send(frame(adt("CS", name=name, msh18=msh18)))
        assert msa(await client.answer()) == ("AA", "CS")
        await client.close()
    [result] = sink.committed
    assert result.bundle is not None
    assert result.bundle["entry"][0]["resource"]["name"][0]["family"] == expected


async def test_idle_timeout_answers_an_identifiable_partial_message_then_closes() -> None:
    async with MllpServer(Hl7Receiver(), port=0, idle_timeout=0.3) as srv:
        client = await Client.connect(srv.bound_port)
        await client.send(SB + adt("PARTIAL")[:70])
        assert msa(await client.answer()) == ("AR", "PARTIAL")
        assert await client.closed_by_server()
        idle = await Client.connect(srv.bound_port)
        assert await idle.closed_by_server()


async def test_connection_limit_queues_extra_connections() -> None:
    async with MllpServer(Hl7Receiver(), port=0, max_connections=1) as srv:
        first = await Client.connect(srv.bound_port)
        await first.send(frame(adt("FIRST")))
        assert msa(await first.answer()) == ("AA", "FIRST")
        second = await Client.connect(srv.bound_port)
        await second.send(frame(adt("SECOND")))
        with pytest.raises(TimeoutError):
            await second.answer(timeout=0.3)  # waiting for the only slot
        await first.close()
        assert msa(await second.answer()) == ("AA", "SECOND")
        await second.close()


async def test_handler_failure_is_answered_ar_and_serving_continues() -> None:
    calls = 0

    async def flaky(raw: bytes) -> bytes | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug")
        return await Hl7Receiver()(raw)

    async with MllpServer(flaky, port=0) as srv:
        client = await Client.connect(srv.bound_port)
        await client.send(frame(adt("BOOM")) + frame(adt("FINE")))
        assert msa(await client.answer()) == ("AR", "BOOM")
        assert msa(await client.answer()) == ("AA", "FINE")
        await client.close()


async def test_no_ack_requested_keeps_order_of_the_others() -> None:
    async with MllpServer(Hl7Receiver(), port=0) as srv:
        client = await Client.connect(srv.bound_port)
        quiet = adt("QUIET", extra=b"NE|NE")  # enhanced mode, no accept ACK wanted
        await client.send(frame(quiet) + frame(adt("LOUD", extra=b"AL|NE")) + frame(adt("ORIG")))
        assert msa(await client.answer()) == ("CA", "LOUD")
        assert msa(await client.answer()) == ("AA", "ORIG")
        await client.close()


async def test_duplicate_gets_the_stored_ack_without_reprocessing() -> None:
    sink = MemorySink()
    async with MllpServer(Hl7Receiver(sink), port=0) as srv:
        client = await Client.connect(srv.bound_port)
        await client.send(frame(adt("DUP")))
        first = await client.answer()
        await client.send(frame(adt("DUP")))
        assert await client.answer() == first  # byte for byte, same MSH-10
        await client.close()
    assert len(sink.committed) == 1
    assert sink.outcomes() == [AckOutcome.ACCEPT]


async def test_commit_failure_is_ar_and_archived() -> None:
    sink = MemorySink(fail=True)
    async with MllpServer(Hl7Receiver(sink), port=0) as srv:
        client = await Client.connect(srv.bound_port)
        await client.send(frame(adt("NOSTORE")))
        ack = await client.answer()
        assert msa(ack) == ("AR", "NOSTORE")
        await client.close()
    assert sink.accepted == {}  # a rejected message is not remembered as answered
    [(key, raw, archived_ack, outcome)] = sink.kept
    assert key == "RIS|HOSP|NOSTORE" and raw == adt("NOSTORE") and archived_ack == ack
    assert outcome is AckOutcome.REJECT


async def test_batch_in_one_frame_gets_a_batch_ack() -> None:
    sink = MemorySink()
    batch = b"BHS|^~\\&|RIS|HOSP|||20240101||||B1\r" + adt("B1M1") + adt("B1M2") + b"BTS|2\r"
    async with MllpServer(Hl7Receiver(sink), port=0) as srv:
        client = await Client.connect(srv.bound_port)
        await client.send(frame(batch))
        answer = (await client.answer()).decode()
        await client.close()
    lines = answer.split("\r")
    assert lines[0].startswith("BHS|^~\\&|") and lines[0].endswith("|B1") and lines[-2] == "BTS|2"
    assert [line for line in lines if line.startswith("MSA")] == ["MSA|AA|B1M1", "MSA|AA|B1M2"]
    assert [r.control_id for r in sink.committed] == ["B1M1", "B1M2"]


async def test_stop_closes_idle_connections_and_stops_listening() -> None:
    srv = MllpServer(Hl7Receiver(), port=0)
    port = await srv.start()
    client = await Client.connect(port)
    await client.send(frame(adt("BEFORE")))
    assert msa(await client.answer()) == ("AA", "BEFORE")
    await srv.stop()
    assert await client.closed_by_server()
    with pytest.raises(OSError):
        await Client.connect(port)


# --- TLS ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_tls(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with MllpServer(Hl7Receiver(), port=0, ssl_context=server_ctx) as srv:
        client = await Client.connect(srv.bound_port, client_ctx)
        for i in range(3):
            await client.send(frame(adt(f"TLS{i}")))
            assert msa(await client.answer()) == ("AA", f"TLS{i}")
        await client.close()
        plain = await Client.connect(srv.bound_port)  # a plain-TCP client cannot talk to a TLS listener
        await plain.send(frame(adt("PLAIN")))
        assert await plain.closed_by_server()


# --- fuzz: nothing a client sends stops the listener ------------------------------------------------------


class ThreadedServer:
    """An MllpServer on its own event loop thread, for blocking (hypothesis-driven) clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = MllpServer(Hl7Receiver(), port=0, max_message_bytes=4096, idle_timeout=5)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(grace=1), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[ThreadedServer]:
    with ThreadedServer() as srv:
        yield srv


def blocking_exchange(port: int, data: bytes, control_id: str) -> bytes:
    """Send ``data`` then a good message on a fresh connection; return everything read until its ACK."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame(adt(control_id)))
        received = b""
        while not received.endswith(END):
            chunk = sock.recv(65536)
            assert chunk, "server closed a well-behaved connection"
            received += chunk
        return received


_PIECES = st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\x1c\r", b"MSH|^~\\&|", b"|", b"^", b"ADT^A08",
                           b"ORM^O01", b"PID|||", b"\xff", b"\x00", b"2.5", b"P", b"MSH"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=200), _PIECES), max_size=40).map(b"".join))
def test_listener_survives_any_input(threaded_server: ThreadedServer, garbage: bytes) -> None:
    answer = blocking_exchange(threaded_server.port, garbage, "ALIVE")
    assert answer.startswith(SB) and msa(answer[1:-2]) == ("AA", "ALIVE")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=100), _PIECES), max_size=20).map(b"".join))
def test_garbage_then_a_message_on_the_same_connection(
    threaded_server: ThreadedServer, garbage: bytes
) -> None:
    """Whatever came before, a framed message is either answered or the connection closed — never a hang."""
    with socket.create_connection(("127.0.0.1", threaded_server.port), timeout=10) as sock:
        sock.sendall(garbage + END + frame(adt("AFTERJUNK")))
        received = b""
        while b"AFTERJUNK" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break  # closed: unidentifiable garbage
            received += chunk
    assert not received or received.startswith(SB)
