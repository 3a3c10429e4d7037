"""HL7 v2 from the RIS to FHIR, end to end: python-hl7's ``mllp_send`` against ``dacs serve``, then the
FHIR API shows what was committed. Samples are read from ../shared (skipped when absent)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.fhir_server.conftest import RunningServer

MLLP_SEND = str(Path(sys.executable).with_name("mllp_send"))
SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"


def send_files(server: RunningServer, paths: list[Path], tmp: Path) -> list[str]:
    """Send files with mllp_send (the real client) on one connection; returns the answers in order."""
    framed = tmp / "all.mllp"
    framed.write_bytes(b"".join(SB + p.read_bytes() + EB + CR for p in paths))
    result = subprocess.run([MLLP_SEND, "--file", str(framed), "--port", str(server.ports["MLLP"]), "localhost"],
                            capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [a.decode("latin-1") for a in re.findall(rb"\x0b(.*?)\x1c\r", result.stdout, flags=re.DOTALL)]


def send_raw(server: RunningServer, message: str) -> str:
    with socket.create_connection(("127.0.0.1", server.ports["MLLP"]), timeout=30) as sock:
        sock.sendall(SB + message.replace("\n", "\r").encode("latin-1") + EB + CR)
        data = b""
        while not data.endswith(EB + CR):
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the ACK"
            data += chunk
    return data[1:-2].decode("latin-1")


def msa(ack: str) -> list[str]:
    return next(seg for seg in ack.replace("\n", "\r").split("\r") if seg.startswith("MSA")).split("|")


@pytest.fixture(scope="module")
def fhir(server: RunningServer) -> httpx.Client:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        yield client


def test_all_samples_through_mllp_send(server: RunningServer, fhir: httpx.Client, samples_dir: Path,
                                       tmp_path: Path) -> None:
    files = sorted((samples_dir / "hl7").glob("*.hl7"))
    assert len(files) == 15
    answers = send_files(server, files, tmp_path)
    assert len(answers) == 15
    printed = {f.name: a for f, a in zip(files, answers, strict=True)}
    for name, out in printed.items():
        if name.startswith("13_"):  # a batch whose messages ask for no ACK: a batch ACK with none inside
            assert out.startswith("BHS|") and "BTS|0" in out
        else:
            assert "MSA|" in out, (name, out)
    # 01: IHE SWF order with ZDS Study Instance UID → ServiceRequest with placer/filler/accession and UID
    orders = fhir.get("/ServiceRequest", params={"identifier": "A103Z"}).json()
    assert orders["total"] == 1
    order = orders["entry"][0]["resource"]
    systems = {i.get("system") for i in order["identifier"]}
    assert "urn:dicom:uid" in systems
    assert any(i["value"] == "urn:oid:1.113654.3.13.1026" for i in order["identifier"])
    patient = fhir.get("/" + order["subject"]["reference"]).json()
    assert any(i["value"] == "583295" for i in patient["identifier"])
    # 11: repeating PID-3 → several identifiers on one Patient
    found = fhir.get("/Patient", params={"identifier": "2148790"}).json()
    assert found["total"] == 1
    values = {i["value"] for i in found["entry"][0]["resource"]["identifier"]}
    assert {"2148790", "162840"} <= values
    # ORU (radiology report) is not a message DACS accepts: refused with AR
    oru = printed["09_ORU_R01_v251_radiology_report_OBX_UIDs.hl7"]
    assert "MSA|AR" in oru


def test_duplicate_gets_the_stored_ack_and_different_payload_is_ae(server: RunningServer,
                                                                    fhir: httpx.Client) -> None:
    control = uuid.uuid4().hex[:12]
    mrn = uuid.uuid4().hex[:8]
    message = (f"MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240101120000||ADT^A04|{control}|P|2.5\n"
               f"PID|||{mrn}^^^HOSP^MR||Alami^Sara||19800101|F\n")
    first = send_raw(server, message)
    again = send_raw(server, message)
    assert msa(first)[1] == "AA" and again == first  # the very same ACK, not a new one
    history = fhir.get("/Patient", params={"identifier": mrn}).json()
    patient_id = history["entry"][0]["resource"]["id"]
    assert fhir.get(f"/Patient/{patient_id}/_history").json()["total"] == 1  # not processed twice
    changed = send_raw(server, message.replace("Sara", "Sarah"))
    assert msa(changed)[1] == "AE" and "205" in changed


def test_merge_repoints_resources(server: RunningServer, fhir: httpx.Client) -> None:
    old, new = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    for mrn, name in ((old, "Old"), (new, "New")):
        ack = send_raw(server, f"MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240101120000||ADT^A04|{uuid.uuid4().hex[:10]}|P|2.5\n"
                               f"PID|||{mrn}^^^HOSP^MR||{name}^Ali||19700101|M\n")
        assert msa(ack)[1] == "AA"
    old_id = fhir.get("/Patient", params={"identifier": old}).json()["entry"][0]["resource"]["id"]
    obs = fhir.post("/Observation", json={"resourceType": "Observation", "status": "final", "code": {"text": "dose"},
                                          "subject": {"reference": f"Patient/{old_id}"}}).json()
    control = uuid.uuid4().hex[:10]
    ack = send_raw(server, f"MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240101130000||ADT^A40^ADT_A39|{control}|P|2.5\n"
                           f"PID|||{new}^^^HOSP^MR||New^Ali||19700101|M\n"
                           f"MRG|{old}^^^HOSP^MR\n")
    assert msa(ack)[1] == "AA", ack
    new_id = fhir.get("/Patient", params={"identifier": new}).json()["entry"][0]["resource"]["id"]
    moved = fhir.get(f"/Observation/{obs['id']}").json()
    assert moved["subject"]["reference"] == f"Patient/{new_id}"
    old_patient = fhir.get(f"/Patient/{old_id}").json()
    assert old_patient["active"] is False
    assert any(link["type"] == "replaced-by" for link in old_patient["link"])


def test_order_links_existing_study(server: RunningServer, fhir: httpx.Client) -> None:
    accession = uuid.uuid4().hex[:10]
    study = fhir.post("/ImagingStudy", json={
        "resourceType": "ImagingStudy", "status": "available",
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                             "code": "ACSN"}]}, "value": accession}],
        "subject": {"reference": "Patient/unknown-yet"}}).json()
    mrn = uuid.uuid4().hex[:8]
    ack = send_raw(server, f"MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240101120000||ORM^O01|{uuid.uuid4().hex[:10]}|P|2.3.1\n"
                           f"PID|||{mrn}^^^HOSP^MR||Berrada^Omar||19600101|M\n"
                           f"ORC|NW|P{accession}^RIS|F{accession}^PACS||SC\n"
                           f"OBR|1|P{accession}^RIS|F{accession}^PACS|CTCHEST^CT chest^L||||||||||||||"
                           f"{accession}|||||||CT\n")
    assert msa(ack)[1] == "AA", ack
    linked = fhir.get(f"/ImagingStudy/{study['id']}").json()
    order = fhir.get("/ServiceRequest", params={"identifier": f"P{accession}"}).json()["entry"][0]["resource"]
    assert linked["basedOn"] == [{"reference": f"ServiceRequest/{order['id']}"}]
    assert linked["subject"]["reference"] == order["subject"]["reference"]


def test_garbage_and_unknown_types_do_not_stop_the_listener(server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", server.ports["MLLP"]), timeout=30) as sock:
        sock.sendall(b"\x00\xffnot hl7 at all" + EB + CR)
    ack = send_raw(server, "MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240101120000||ZZZ^Z99|x1|P|2.5\n")
    assert msa(ack)[1] == "AR"
