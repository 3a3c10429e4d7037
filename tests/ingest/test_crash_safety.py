"""No acknowledged data is lost when the server is killed at any moment (PRODUCT.md, quality bars).

``dacs serve`` is killed with SIGKILL while a modality is sending; after a restart on the same data
directory, every report the modality saw acknowledged is there, the store is consistent, and sending
everything again completes the rest without duplicates."""

from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.fhir_server.conftest import RunningServer
from tests.ingest.test_dicom_ingest import generated


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
