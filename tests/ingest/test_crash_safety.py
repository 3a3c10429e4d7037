"""No acknowledged data is lost when the server is killed at any moment (PRODUCT.md, quality bars).

``dacs serve`` is killed with SIGKILL while a modality is sending; after a restart on the same data
directory, every report the modality saw acknowledged is there, the store is consistent, and sending
everything again completes the rest without duplicates."""

from __future__ import annotations

import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.fhir_server.conftest import RunningServer
from tests.ingest.test_dicom_ingest import generated
from tests.ingest.test_hl7_pipeline import order


def test_kill_during_ingest_loses_nothing_acknowledged(tmp_path: Path) -> None:
    storescu = shutil.which("storescu")
    if storescu is None:
        pytest.skip("dcmtk storescu is not installed (make test installs it)")
    media = tmp_path / "media"
    media.mkdir()
    sent = [generated(media, patient_id=f"CRASH-{random.randrange(10**6)}") for _ in range(60)]
    data = tmp_path / "data"
    server = RunningServer(data)
    client = subprocess.Popen([storescu, "-v", "-aec", "DACS", "127.0.0.1", str(server.ports["DICOM"]),
                               *(str(p) for p, _ in sent)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    # kill the server as soon as some (but not all) reports are acknowledged
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = "".join(server.lines)
        if log.count("imported") >= 5 or client.poll() is not None:
            break
        time.sleep(0.02)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    output, _ = client.communicate(timeout=60)
    acknowledged = []
    current = None
    for line in output.splitlines():
        match = re.search(r"Sending file: (\S+)", line)
        if match:
            current = match.group(1)
        if "Received Store Response (Success)" in line and current:
            acknowledged.append(current)
    assert 0 < len(acknowledged) < len(sent), output[-1500:]

    restarted = RunningServer(data)
    try:
        with httpx.Client(base_url=restarted.base, timeout=60) as fhir:
            uid_of = {str(p): ds.StudyInstanceUID for p, ds in sent}
            for path in acknowledged:
                uid = f"urn:dicom:uid|urn:oid:{uid_of[path]}"
                found = fhir.get("/ImagingStudy", params={"identifier": uid})
                assert found.json()["total"] == 1, path  # acknowledged means stored
            # everything again: the rest is stored, nothing is duplicated
            again = subprocess.run([storescu, "-aec", "DACS", "127.0.0.1", str(restarted.ports["DICOM"]),
                                    *(str(p) for p, _ in sent)], capture_output=True, text=True, timeout=300)
            assert again.returncode == 0, again.stderr[-1500:]
            for path, ds in sent:
                uid = f"urn:dicom:uid|urn:oid:{ds.StudyInstanceUID}"
                found = fhir.get("/ImagingStudy", params={"identifier": uid}).json()
                assert found["total"] == 1, path
                study = found["entry"][0]["resource"]["id"]
                summary = fhir.get("/Observation", params={"part-of": f"ImagingStudy/{study}",
                                                           "code": "http://loinc.org|73569-6"})
                assert summary.json()["total"] == 1
    finally:
        restarted.stop()


def _send_orders(port: int, numbers: list[int], acked: dict[int, bytes], stop: threading.Event) -> None:
    """One RIS connection: send each order, wait for its ACK; note the AAs; stop when the server dies."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for i in numbers:
                if stop.is_set():
                    return
                sock.sendall(b"\x0b" + order(i) + b"\x1c\r")
                answer = b""
                while not answer.endswith(b"\x1c\r"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    answer += chunk
                if b"MSA|AA|" in answer:
                    acked[i] = answer
    except OSError:
        return  # the server was killed


def test_kill_during_hl7_burst_loses_no_acknowledged_order(tmp_path: Path) -> None:
    """Four RIS connections share group commits; SIGKILL mid-burst; every AA'd order survives."""
    data = tmp_path / "data"
    server = RunningServer(data)
    acked: dict[int, bytes] = {}
    stop = threading.Event()
    batches = [list(range(c, 400, 4)) for c in range(4)]
    clients = [threading.Thread(target=_send_orders, args=(server.ports["MLLP"], b, acked, stop)) for b in batches]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 60
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.005)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    stop.set()
    for client in clients:
        client.join(30)
    assert 40 <= len(acked) < 400

    restarted = RunningServer(data)
    try:
        with httpx.Client(base_url=restarted.base, timeout=60) as fhir:
            for i in acked:
                found = fhir.get("/ServiceRequest", params={"identifier": f"PLC{i}"}).json()
                assert found["total"] == 1, i  # acknowledged means stored
                patient = fhir.get("/" + found["entry"][0]["resource"]["subject"]["reference"])
                assert patient.status_code == 200
            # everything again: acknowledged orders get their stored ACK, the rest is stored once
            again: dict[int, bytes] = {}
            _send_orders(restarted.ports["MLLP"], list(range(400)), again, threading.Event())
            assert len(again) == 400
            assert all(again[i] == ack for i, ack in acked.items())  # the same ACK, byte for byte
            for type_ in ("ServiceRequest", "Patient"):
                total = fhir.get(f"/{type_}", params={"_summary": "count"}).json()["total"]
                assert total == 400, type_
    finally:
        restarted.stop()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_worker_processes_do_not_outlive_the_server(tmp_path: Path, how: signal.Signals) -> None:
    """Stopped (SIGTERM: a clean stop) or killed, the server leaves no orphaned workers behind."""
    server = RunningServer(tmp_path / "data")
    workers = _children(server.process.pid)
    assert len(workers) >= 2  # mapping and evaluation workers (and multiprocessing's resource tracker)
    server.process.send_signal(how)
    code = server.process.wait(30)
    if how == signal.SIGTERM:
        server._drain.join(10)
        assert code == 0 and "DACS stopped" in "".join(server.lines)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)]
