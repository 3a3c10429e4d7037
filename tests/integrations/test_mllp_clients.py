"""All 15 samples through the real network path, sent by real HL7 clients (python-hl7).

Clients: the ``mllp_send`` command-line tool (one connection for a whole file) and
``hl7.client.MLLPClient``. Server: :class:`MllpServer` with :class:`Hl7Receiver` (parse, map, ACK), a
sink that validates every Bundle with the FHIR R4B models and keeps everything in memory.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hl7.client import MLLPClient

from integrations.mllp import Hl7Receiver, MllpServer, frame
from mappings.hl7v2 import AckOutcome, parse_message
from tests.integrations.sinks import MemorySink

MLLP_SEND = Path(sys.executable).with_name("mllp_send")

# What each sample must get back, from what the sample is (see samples/hl7/SOURCES.md):
# supported ORM/OMI/ADT → AA (sample 15 asks for enhanced mode, MSH-15 AL → CA); ORU and RSP → AR;
# sample 07 reuses sample 06's MSH-3/4/10 (100212) with other content → AE 205 (duplicate key).
EXPECTED = {
    "01": ("AA", "103106"), "02": ("AA", "100112"), "03": ("AA", "1001125"), "04": ("AA", "1001126"),
    "05": ("AA", "1002122"), "06": ("AA", "100212"), "07": ("AE", "100212"), "08": ("AA", "1002123"),
    "09": ("AR", "1001129"), "10": ("AR", "1001127"), "11": ("AA", "Q150084616T145947960"),
    "12": ("AR", "CNTRL-3456"), "14": ("AR", "1234"), "15": ("CA", "CTRL-ESC-0001"),
}


@pytest.fixture
async def listener() -> AsyncIterator[tuple[MllpServer, MemorySink]]:
    sink = MemorySink()
    server = MllpServer(Hl7Receiver(sink), port=0, idle_timeout=30)
    await server.start()
    yield server, sink
    await server.stop()


async def mllp_send(port: int, path: Path, *options: str) -> bytes:
    """Run python-hl7's ``mllp_send`` on a file (one connection); its stdout holds every raw answer."""
    if not MLLP_SEND.exists():
        pytest.skip("python-hl7's mllp_send is not installed")
    process = await asyncio.create_subprocess_exec(
        str(MLLP_SEND), *options, "-p", str(port), "-f", str(path), "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err
    return out


def frames_in(output: bytes) -> list[bytes]:
    return re.findall(rb"\x0b(.*?)\x1c\r", output, flags=re.DOTALL)


def msa_of(ack: bytes) -> tuple[str, str]:
    msa = parse_message(ack).segment("MSA")
    assert msa is not None
    return msa.get(1), msa.get(2)


def err_code(ack: bytes) -> str:
    """Table 0357 code: ERR-3 from v2.5, ERR-1.4 (ELD) before."""
    err = parse_message(ack).segment("ERR")
    assert err is not None
    return err.get(3) or err.get(1, 4, 1)


def check_batch_answer(answer: bytes) -> None:
    lines = answer.decode().split("\r")
    assert lines[0].startswith("BHS|") and lines[0].endswith("|abchs20070101123401-1")
    assert lines[-2] == "BTS|0"  # both messages ask for no ACK (MSH-15/16 NE): none in the batch ACK


def check_answers(names: list[str], answers: list[bytes]) -> None:
    assert len(answers) == len(names) == 15
    for name, answer in zip(names, answers, strict=True):
        prefix = name[:2]
        if prefix == "13":
            check_batch_answer(answer)
            continue
        assert msa_of(answer) == EXPECTED[prefix], name
        if prefix in ("09", "10", "12", "14"):
            assert err_code(answer) == "200"
        if prefix == "07":
            assert err_code(answer) == "205"


def check_committed(sink: MemorySink) -> None:
    ids = [r.control_id for r in sink.committed]
    assert ids == ["103106", "100112", "1001125", "1001126", "1002122", "100212", "1002123",
                   "Q150084616T145947960", "12334456778890", "12334456778891", "CTRL-ESC-0001"]
    merge = sink.committed[4]
    assert [(p.old.value, p.new.value) for p in merge.repoints] == [("OLD_PID_1", "NEW_PID_1")]


async def test_all_samples_with_mllp_send(
    listener: tuple[MllpServer, MemorySink], samples_dir: Path, tmp_path: Path
) -> None:
    server, sink = listener
    files = sorted((samples_dir / "hl7").glob("*.hl7"))
    framed = tmp_path / "all.mllp"
    framed.write_bytes(b"".join(frame(f.read_bytes()) for f in files))
    out = await mllp_send(server.bound_port, framed)
    check_answers([f.name for f in files], frames_in(out))
    check_committed(sink)
    assert sink.outcomes().count(AckOutcome.REJECT) == 4  # ORU ×3, RSP


async def test_all_samples_with_mllp_client(
    listener: tuple[MllpServer, MemorySink], samples_dir: Path
) -> None:
    server, sink = listener
    files = sorted((samples_dir / "hl7").glob("*.hl7"))

    def send_all() -> list[bytes]:
        answers = []
        with MLLPClient("127.0.0.1", server.bound_port) as client:  # one connection for all
            for f in files:
                received = client.send_message(f.read_bytes())
                [answer] = frames_in(received)
                answers.append(answer)
        return answers

    answers = await asyncio.wait_for(asyncio.to_thread(send_all), 60)
    check_answers([f.name for f in files], answers)
    check_committed(sink)


async def test_resending_everything_is_answered_from_the_store(
    listener: tuple[MllpServer, MemorySink], samples_dir: Path
) -> None:
    server, sink = listener
    raw = next((samples_dir / "hl7").glob("02_*.hl7")).read_bytes()

    def send_twice() -> tuple[bytes, bytes]:
        with MLLPClient("127.0.0.1", server.bound_port) as client:
            return client.send_message(raw), client.send_message(raw)

    first, second = await asyncio.to_thread(send_twice)
    assert first == second and len(sink.committed) == 1


async def test_loose_text_file_with_crlf_and_lf(
    listener: tuple[MllpServer, MemorySink], samples_dir: Path, tmp_path: Path
) -> None:
    """``mllp_send --loose``: a plain text file, LF/CRLF line ends, messages split on ``MSH|^~\\&|``."""
    server, sink = listener
    chosen = ["01", "10", "11"]
    text = b"\n".join(next((samples_dir / "hl7").glob(f"{p}_*.hl7")).read_bytes().replace(b"\r", b"\n")
                      for p in chosen)
    loose = tmp_path / "loose.hl7"
    loose.write_bytes(text)
    out = await mllp_send(server.bound_port, loose, "--loose")
    assert [msa_of(a) for a in frames_in(out)] == [EXPECTED[p] for p in chosen]
    assert [r.control_id for r in sink.committed] == ["103106", "Q150084616T145947960"]
