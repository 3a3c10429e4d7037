"""DICOM from the modality to FHIR, end to end: dcmtk's ``storescu`` and pynetdicom's ``storescu`` send to
``dacs serve``; the FHIR API shows what was committed; ``dacs import``/``remap``/``quarantine`` on disk.

The vendor samples are read from ../shared (skipped when absent); small RDSRs are generated."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.fhir_server.conftest import RunningServer
from tests.ingest.test_hl7_ingest import msa, send_raw
from tests.mappings import rdsr_factory as factory

DOSE_SUMMARY = "http://loinc.org|73569-6"
STORESCU = shutil.which("storescu")


def dcmtk_send(server: RunningServer, paths: list[Path]) -> subprocess.CompletedProcess[str]:
    if STORESCU is None:
        pytest.skip("dcmtk storescu is not installed (make test installs it)")
    return subprocess.run([STORESCU, "-v", "-R", "-nh", "-aec", "DACS", "-aet", "MODALITY", "127.0.0.1",
                           str(server.ports["DICOM"]), *map(str, paths)],
                          capture_output=True, text=True, timeout=300, check=False)


def pynetdicom_send(server: RunningServer, paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pynetdicom", "storescu", "-cx", "-aet", "MODALITY", "-aec", "DACS",
                           "127.0.0.1",
                           str(server.ports["DICOM"]), *map(str, paths)],
                          capture_output=True, text=True, timeout=300, check=False)


def study_of(fhir: httpx.Client, study_uid: str) -> dict | None:
    found = fhir.get("/ImagingStudy", params={"identifier": f"urn:dicom:uid|urn:oid:{study_uid}"}).json()
    return found["entry"][0]["resource"] if found.get("total") else None


@pytest.fixture(scope="module")
def fhir(server: RunningServer) -> httpx.Client:
    with httpx.Client(base_url=server.base, timeout=60) as client:
        yield client


def generated(tmp: Path, **kwargs: object) -> tuple[Path, pydicom.Dataset]:
    n = random.randrange(10**9)
    kwargs.setdefault("events", [factory.ct_event(n * 10 + 1), factory.ct_event(n * 10 + 2)])  # unique event UIDs
    ds = factory.ct_report(n=n, **kwargs)  # type: ignore[arg-type]
    path = tmp / f"ct-{n}.dcm"
    path.write_bytes(factory.to_bytes(ds))
    return path, ds


def test_all_samples_with_storescu_then_resent_with_pynetdicom(server: RunningServer, fhir: httpx.Client,
                                                              samples_dir: Path) -> None:
    files = sorted((samples_dir / "rdsr").glob("*.dcm"))
    assert len(files) == 41
    sent = dcmtk_send(server, files)
    assert sent.returncode == 0, sent.stderr[-2000:]
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        study = study_of(fhir, ds.StudyInstanceUID)
        if "arcadis" in path.name:  # the proprietary summary is kept, not mapped into numbers
            continue
        assert study is not None, path.name
        instances = [i["uid"] for s in study.get("series", []) for i in s.get("instance", [])]
        assert ds.SOPInstanceUID in instances, path.name
        summaries = fhir.get("/Observation", params={"part-of": f"ImagingStudy/{study['id']}",
                                                     "code": DOSE_SUMMARY}).json()
        assert summaries["total"] >= 1, path.name
    versions_before = fhir.get("/_history", params={"_count": 0}).json()["total"]
    again = pynetdicom_send(server, files)
    assert again.returncode == 0, again.stderr[-2000:]
    assert fhir.get("/_history", params={"_count": 0}).json()["total"] == versions_before  # idempotent


def test_cumulative_resends_do_not_double_count(server: RunningServer, fhir: httpx.Client,
                                                samples_dir: Path) -> None:
    files = sorted((samples_dir / "rdsr").glob("ct_siemens_confidence_cumulative_*.dcm"))
    assert len(files) == 3
    # newest first: the later, smaller re-sends must not replace the full summary
    assert dcmtk_send(server, list(reversed(files))).returncode == 0
    largest = pydicom.dcmread(files[-1])
    study = study_of(fhir, largest.StudyInstanceUID)
    assert study is not None
    summaries = fhir.get("/Observation", params={"part-of": f"ImagingStudy/{study['id']}",
                                                 "code": DOSE_SUMMARY}).json()
    assert summaries["total"] == 1


def test_failures_get_a_failure_status_and_are_quarantined(server: RunningServer, tmp_path: Path) -> None:
    path, ds = generated(tmp_path, dlp_total="not-a-number",
                         events=[factory.ct_event(random.randrange(10**9), ctdivol="abc")])
    result = dcmtk_send(server, [path])
    output = result.stdout + result.stderr
    assert "Received Store Response (Error: CannotUnderstand)" in output, output[-2000:]
    listed = subprocess.run([sys.executable, "-m", "fhir_server.cli", "quarantine", "list", "--data-dir",
                             str(server.data_dir)], capture_output=True, text=True, timeout=60, check=False)
    assert ds.SOPInstanceUID[:20] in listed.stdout.replace("\n", "")


def test_study_first_then_order_links_and_repoints(server: RunningServer, fhir: httpx.Client,
                                                   tmp_path: Path) -> None:
    accession = f"A{random.randrange(10**8)}"
    path, ds = generated(tmp_path, accession=accession, patient_id=f"MOD-{random.randrange(10**6)}")
    assert dcmtk_send(server, [path]).returncode == 0
    study = study_of(fhir, ds.StudyInstanceUID)
    assert study is not None and "basedOn" not in study
    mrn = f"RIS-{random.randrange(10**6)}"
    ack = send_raw(server, f"MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240301090000||ORM^O01|{accession}-1|P|2.3.1\n"
                           f"PID|||{mrn}^^^HOSP^MR||Tazi^Nadia||19700101|F\n"
                           f"ORC|NW|P{accession}^RIS|F{accession}^PACS||SC\n"
                           f"OBR|1|P{accession}^RIS|F{accession}^PACS|CT^CT abdomen^L||||||||||||||"
                           f"{accession}|||||||CT\n")
    assert msa(ack)[1] == "AA", ack
    linked = study_of(fhir, ds.StudyInstanceUID)
    assert linked is not None and linked["basedOn"][0]["reference"].startswith("ServiceRequest/")
    order = fhir.get("/" + linked["basedOn"][0]["reference"]).json()
    assert linked["subject"] == order["subject"]
    doses = fhir.get("/Observation", params={"part-of": f"ImagingStudy/{linked['id']}"}).json()
    assert doses["total"] >= 1
    assert {e["resource"]["subject"]["reference"] for e in doses["entry"]} == {order["subject"]["reference"]}


def test_order_first_then_study(server: RunningServer, fhir: httpx.Client, tmp_path: Path) -> None:
    accession = f"B{random.randrange(10**8)}"
    ack = send_raw(server, f"MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240301090000||ORM^O01|{accession}-1|P|2.3.1\n"
                           f"PID|||R{accession}^^^HOSP^MR||Idrissi^Karim||19650101|M\n"
                           f"ORC|NW|P{accession}^RIS|F{accession}^PACS||SC\n"
                           f"OBR|1|P{accession}^RIS|F{accession}^PACS|CT^CT head^L||||||||||||||"
                           f"{accession}|||||||CT\n")
    assert msa(ack)[1] == "AA"
    path, ds = generated(tmp_path, accession=accession)
    assert pynetdicom_send(server, [path]).returncode == 0
    study = study_of(fhir, ds.StudyInstanceUID)
    assert study is not None and study["basedOn"][0]["reference"].startswith("ServiceRequest/")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhir_server.cli", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_import_folder_dicomdir_hl7_then_duplicates_and_remap(tmp_path: Path) -> None:
    media = tmp_path / "usb"
    media.mkdir()
    paths = [generated(media)[0] for _ in range(3)]
    (media / "README.txt").write_text("not dicom")
    (media / "order.hl7").write_bytes(b"MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240101120000||ADT^A04|imp-1|P|2.5\r"
                                      b"PID|||IMP-1^^^HOSP^MR||Amrani^Laila||19900101|F\r")
    data = tmp_path / "data"
    first = run_cli("import", str(media), "--data-dir", str(data))
    assert first.returncode == 0, first.stdout + first.stderr
    counts = dict(line.strip("│ ").split("│")[:2] for line in first.stdout.splitlines()
                  if line.count("│") == 3 and "outcome" not in line)
    counts = {k.strip(): int(v) for k, v in counts.items()}
    assert counts["imported"] == 4 and counts["skipped"] == 1
    second = run_cli("import", *map(str, paths), "--data-dir", str(data))
    assert "duplicate" in second.stdout and second.returncode == 0
    remapped = run_cli("remap", "--data-dir", str(data))
    assert "remapped 3 archived objects" in remapped.stdout and "0 objects changed" in remapped.stdout


def test_dicom_listener_answers_echo(server: RunningServer) -> None:
    echoscu = shutil.which("echoscu")
    if echoscu is None:
        pytest.skip("dcmtk echoscu is not installed")
    result = subprocess.run([echoscu, "-aec", "DACS", "127.0.0.1", str(server.ports["DICOM"])],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_mpps_is_accepted_and_archived(server: RunningServer) -> None:
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", server.ports["DICOM"], ae_title="DACS")
    assert assoc.is_established
    try:
        uid = generate_uid()
        create = Dataset()
        create.PatientID = "MPPS-1"
        create.PerformedProcedureStepStatus = "IN PROGRESS"
        create.Modality = "CT"
        status, _ = assoc.send_n_create(create, ModalityPerformedProcedureStep, uid)
        assert status.Status == 0x0000
        done = Dataset()
        done.PerformedProcedureStepStatus = "COMPLETED"
        status, _ = assoc.send_n_set(done, ModalityPerformedProcedureStep, uid)
        assert status.Status == 0x0000
        status, _ = assoc.send_n_set(done, ModalityPerformedProcedureStep, generate_uid())
        assert status.Status == 0x0112  # no such MPPS instance
    finally:
        assoc.release()
    archived = list((server.data_dir / "archive" / "mpps").rglob(f"{uid}*"))
    assert len(archived) == 2


def test_evaluate_command_is_idempotent(tmp_path: Path) -> None:
    media = tmp_path / "usb"
    media.mkdir()
    generated(media, dlp_total="800.0")
    data = tmp_path / "data"
    assert run_cli("import", str(media), "--data-dir", str(data)).returncode == 0
    again = run_cli("evaluate", "--data-dir", str(data))
    assert again.returncode == 0 and "evaluated 1 studies: 0 resources written" in again.stdout, again.stdout


def test_a_dead_mapping_process_does_not_stop_ingest(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from fhir_server.runtime import Runtime
    from fhir_server.settings import Settings
    from integrations.dicom.files import read_dicom_bytes

    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
    pool.submit(int, 0).result()
    for process in list(pool._processes.values()):  # simulate a crash of the worker
        process.kill()
        process.join()
    runtime.dicom.pool = pool
    try:
        path, _ = generated(tmp_path)
        result = runtime.dicom.ingest(read_dicom_bytes(path.read_bytes()))
        assert result.outcome.status == 0 and result.study_id is not None
        assert runtime.dicom.pool is None  # mapping continues in the receiving process
    finally:
        pool.shutdown(wait=False)
        runtime.close()


def test_objects_archived_but_not_mapped_are_recovered(tmp_path: Path) -> None:
    from fhir_server.archive import QuarantineEntry
    from fhir_server.ingest.dicom import PENDING
    from fhir_server.runtime import Runtime
    from fhir_server.settings import Settings

    path, ds = generated(tmp_path)
    settings = Settings(data_dir=tmp_path / "data")
    crashed = Runtime.open(settings)  # as if the process died right after archiving
    record, _ = crashed.archive.put("dicom", ds.SOPInstanceUID, path.read_bytes(), "2026-01-01T00:00:00Z")
    crashed.archive.quarantine(QuarantineEntry("dicom", ds.SOPInstanceUID, record.sha256, PENDING, "now"))
    crashed.close()
    restarted = Runtime.open(settings)
    try:
        assert restarted.dicom.recover() == 1
        found = restarted.service.search("ImagingStudy", [("identifier",
                                                            f"urn:dicom:uid|urn:oid:{ds.StudyInstanceUID}")])
        assert found.page.total == 1 and not restarted.archive.is_quarantined("dicom", ds.SOPInstanceUID)
    finally:
        restarted.close()


def test_ingest_on_the_mongodb_backend(mongo_server: RunningServer, tmp_path: Path) -> None:
    paths = [generated(tmp_path)[0] for _ in range(3)]
    assert dcmtk_send(mongo_server, paths).returncode == 0
    ack = send_raw(mongo_server, "MSH|^~\\&|RIS|HOSP|DACS|HOSP|20240101120000||ADT^A04|mongo-1|P|2.5\n"
                                 "PID|||MONGO-1^^^HOSP^MR||Fassi^Hind||19850101|F\n")
    assert msa(ack)[1] == "AA"
    with httpx.Client(base_url=mongo_server.base, timeout=60) as fhir:
        for path in paths:
            ds = pydicom.dcmread(path)
            assert study_of(fhir, ds.StudyInstanceUID) is not None
        assert fhir.get("/Patient", params={"identifier": "MONGO-1"}).json()["total"] == 1
    assert dcmtk_send(mongo_server, paths).returncode == 0  # duplicates, from the GridFS archive
