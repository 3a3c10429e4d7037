"""MPPS as a fallback dose source, end to end: a pynetdicom SCU sends N-CREATE / N-SET to ``dacs serve``;
the FHIR API shows the ImagingStudy, the MPPS dose Observation and ``$dose-summary`` (RDSR wins)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import ModalityPerformedProcedureStep, XRayRadiationDoseSRStorage  # type: ignore[attr-defined]

from fhir_server.archive.files import FileArchive
from fhir_server.evaluation.summary import exam_rows
from tests.fhir_server.conftest import RunningServer
from tests.mappings import rdsr_factory as factory

MPPS_DOSE = "urn:dacs:mpps-dose"


@pytest.fixture
def mpps_scu(server: RunningServer) -> Iterator[Association]:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", server.ports["DICOM"], ae_title="DACS")
    assert assoc.is_established
    yield assoc
    assoc.release()


@pytest.fixture(scope="module")
def fhir(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=60) as client:
        yield client


def n_create(patient_id: str, study_uid: str | None, modality: str = "RF") -> Dataset:
    ds = Dataset()
    ds.PatientID = patient_id
    ds.PatientName = "Doe^Jane"
    ds.PatientSex = "F"
    ds.PatientBirthDate = "19700101"
    ds.Modality = modality
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepStartDate = "20240301"
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PerformedStationName = "ROOM7"
    step = Dataset()
    if study_uid:
        step.StudyInstanceUID = study_uid
    step.AccessionNumber = f"A{abs(hash(patient_id)) % 10**8}"
    ds.ScheduledStepAttributesSequence = Sequence([step])
    return ds


def n_set_completed(dap_dgycm2: str = "12.5", fluoro_s: int = 184) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate = "20240301"
    ds.PerformedProcedureStepEndTime = "104500"
    ds.ImageAndFluoroscopyAreaDoseProduct = dap_dgycm2
    ds.TotalTimeOfFluoroscopy = fluoro_s
    ds.TotalNumberOfExposures = 4
    return ds


def send_mpps(assoc: Association, create: Dataset, *updates: Dataset) -> tuple[str, list[int]]:
    uid = generate_uid()
    status, _ = assoc.send_n_create(create, ModalityPerformedProcedureStep, uid)
    statuses = [int(status.Status)]
    for update in updates:
        status, _ = assoc.send_n_set(update, ModalityPerformedProcedureStep, uid)
        statuses.append(int(status.Status))
    return uid, statuses


def send_rdsr(server: RunningServer, ds: Dataset) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(XRayRadiationDoseSRStorage)
    assoc = ae.associate("127.0.0.1", server.ports["DICOM"], ae_title="DACS")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
        assert status.Status == 0x0000
    finally:
        assoc.release()


def one(fhir: httpx.Client, resource_type: str, **params: str) -> dict:
    bundle = fhir.get(f"/{resource_type}", params=params).json()
    assert bundle.get("total", len(bundle.get("entry", []))) == 1, bundle
    return bundle["entry"][0]["resource"]


def component(obs: dict, code: str) -> dict:
    (found,) = [c for c in obs["component"] if c["code"]["coding"][0]["code"] == code]
    return found


def exam_dap(fhir: httpx.Client, patient: dict) -> list[float]:
    summary = fhir.get(f"/Patient/{patient['id']}/$dose-summary").json()
    return [row["dap"]["value"] for row in exam_rows(summary) if row.get("dap")]


def test_completed_mpps_gives_imaging_study_and_dose(server: RunningServer, fhir: httpx.Client,
                                                     mpps_scu: Association) -> None:
    pid = f"MPPS-{random.randrange(10**9)}"
    study_uid = generate_uid()
    in_progress = Dataset()
    in_progress.PerformedProcedureStepStatus = "IN PROGRESS"
    in_progress.TotalTimeOfFluoroscopy = 30
    uid, statuses = send_mpps(mpps_scu, n_create(pid, study_uid), in_progress, n_set_completed())
    assert statuses == [0, 0, 0]
    study = one(fhir, "ImagingStudy", identifier=f"urn:dicom:uid|urn:oid:{study_uid}")
    assert {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "RF"} in study["modality"]
    assert study["started"].startswith("2024-03-01T10:15:00")
    obs = one(fhir, "Observation", identifier=f"{MPPS_DOSE}|{uid}")
    assert obs["partOf"] == [{"reference": f"ImagingStudy/{study['id']}"}]
    assert obs["subject"] == study["subject"]
    assert obs["method"]["coding"][0]["code"] == "113858"
    assert component(obs, "113722")["valueQuantity"]["value"] == 1250  # 12.5 dGy.cm2 in mGy.cm2
    assert component(obs, "113730")["valueQuantity"] == {"value": 184, "unit": "s",
                                                         "system": "http://unitsofmeasure.org", "code": "s"}
    patient = one(fhir, "Patient", identifier=pid)
    assert exam_dap(fhir, patient) == [1.25]  # Gy.cm2: the MPPS is the study's only dose source


@pytest.mark.parametrize("rdsr_first", [False, True])
def test_rdsr_wins_over_mpps_for_the_same_study(server: RunningServer, fhir: httpx.Client,
                                                mpps_scu: Association, rdsr_first: bool) -> None:
    n = random.randrange(10**9)
    pid = f"RDSR-MPPS-{n}"
    report = factory.projection_report(n=n, patient_id=pid, accession=f"A{abs(hash(pid)) % 10**8}",
                                       events=[factory.projection_event(n * 10 + 1)])
    study_uid = report.StudyInstanceUID
    if rdsr_first:
        send_rdsr(server, report)
    uid, statuses = send_mpps(mpps_scu, n_create(pid, study_uid), n_set_completed(dap_dgycm2="12.5"))
    assert statuses == [0, 0]
    if not rdsr_first:
        patient = one(fhir, "Patient", identifier=pid)
        assert exam_dap(fhir, patient) == [1.25]  # MPPS alone counts...
        send_rdsr(server, report)
    one(fhir, "Observation", identifier=f"{MPPS_DOSE}|{uid}")  # ...and is kept when the RDSR arrives,
    patient = one(fhir, "Patient", identifier=pid)
    assert exam_dap(fhir, patient) == [2.0]  # but only the RDSR's DAP total (0.0002 Gy.m2) is counted
    study = one(fhir, "ImagingStudy", identifier=f"urn:dicom:uid|urn:oid:{study_uid}")
    assert study["started"].startswith("2024-03-01T10:15:00")


def test_completed_mpps_without_study_uid_is_a_processing_failure(server: RunningServer, fhir: httpx.Client,
                                                                  mpps_scu: Association) -> None:
    pid = f"NOSTUDY-{random.randrange(10**9)}"
    uid = generate_uid()
    status, _ = mpps_scu.send_n_create(n_create(pid, None), ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0000
    status, _ = mpps_scu.send_n_set(n_set_completed(), ModalityPerformedProcedureStep, uid)
    assert status.Status == 0x0110
    assert "Study Instance UID" in str(status.get("ErrorComment", ""))
    assert fhir.get("/Observation", params={"identifier": f"{MPPS_DOSE}|{uid}"}).json().get("total", 0) == 0
    archived = list((server.data_dir / "archive" / "mpps").rglob(f"{uid}*"))
    assert len(archived) == 2  # both messages kept for a retry
    [flag] = [q for q in FileArchive(server.data_dir / "archive").quarantined("mpps") if q.key == f"{uid}/N-SET"]
    assert "Study Instance UID" in flag.reason


def test_completed_mpps_without_dose_is_only_archived(server: RunningServer, fhir: httpx.Client,
                                                      mpps_scu: Association) -> None:
    pid = f"NODOSE-{random.randrange(10**9)}"
    study_uid = generate_uid()
    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    uid, statuses = send_mpps(mpps_scu, n_create(pid, study_uid, "CT"), done)
    assert statuses == [0, 0]
    assert fhir.get("/ImagingStudy", params={"identifier": f"urn:dicom:uid|urn:oid:{study_uid}"}).json().get(
        "total", 0) == 0
    assert fhir.get("/Observation", params={"identifier": f"{MPPS_DOSE}|{uid}"}).json().get("total", 0) == 0
    assert len(list((server.data_dir / "archive" / "mpps").rglob(f"{uid}*"))) == 2
