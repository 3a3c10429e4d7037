"""Reproduce the source paper's Table I with ``$dose-summary`` over HTTP.

Table I ("Dose absorbed for different procedures across 10 patients", seeds/dacs-morocco-paper.txt,
section V) gives one value per patient and procedure; the magnitudes are those of effective doses in
mSv (chest CT about 6, head CT about 1.5, chest radiograph about 0.1), so each value is stored as the
effective dose its dose report recorded (DICOM 113814 for CT, 113839 for the other exams), the way the
mapping stores a report that carries one. Each exam is evaluated with ``$evaluate-dose`` (as ingest
does) and each patient's ``$dose-summary`` must give the row total to the paper's two decimals.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.evaluation.test_operations_http import parts, post_bundle, study_of, values
from tests.fhir_server.conftest import RunningServer

PAPER = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "dacs-morocco-paper.txt"

# Columns of Table I: (procedure, DICOM modality, study description)
PROCEDURES = (
    ("Chest CT", "CT", "CT chest"),
    ("Abdomen CT", "CT", "CT abdomen"),
    ("Brain CT", "CT", "CT brain"),
    ("Cardiac CT", "CT", "CT heart"),
    ("Lumbar Standard", "DX", "Lumbar spine radiograph"),
    ("Extremity Standard", "DX", "Extremity radiograph"),
    ("Chest Standard", "DX", "Chest radiograph"),
    ("Mammography", "MG", "Mammography"),
    ("Dental", "IO", "Dental intraoral radiograph"),
)

# Table I as printed ("*" and the empty dental cell of patient 3: no exam).
TABLE_I = {
    1: (6.1, None, None, None, 1.4, None, 0.2, 0.21, None),
    2: (None, 5.3, 1.6, None, None, None, None, None, 0.25),
    3: (6, 5.2, None, None, None, 0.2, 0.1, 0.20, None),
    4: (None, None, 1.5, 1.6, None, None, 0.2, None, 0.23),
    5: (6.2, None, None, 1.5, None, 0.1, None, None, 0.3),
    6: (None, 5.4, 1.4, None, 1.3, None, None, 0.22, None),
    7: (None, None, None, None, 1.2, None, 0.2, None, 0.31),
    8: (None, 5, None, 1.4, None, 0.3, 0.1, None, None),
    9: (6, 4.8, None, None, None, None, None, None, 0.2),
    10: (7, None, 1.8, None, 1, None, 0.12, 0.3, None),
}

# Row totals, added by hand from the table (mSv, two decimals as in the paper).
PAPER_TOTALS = {1: 7.91, 2: 7.15, 3: 11.70, 4: 3.53, 5: 8.10, 6: 8.32, 7: 1.71, 8: 6.80, 9: 11.00, 10: 10.22}

DCM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM = "http://unitsofmeasure.org"


def test_table_one_transcription_matches_the_paper() -> None:
    if not PAPER.is_file():
        pytest.skip(f"source paper not found at {PAPER}")
    text = PAPER.read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("Procedure Patient"))
    assert [c.strip() for c in header.split("\t")[1:]] == [p[0] for p in PROCEDURES]
    for line in text.splitlines():
        match = re.match(r"^Patient (\d+)\t(.*)$", line)
        if not match:
            continue
        cells = [c.strip() for c in match.group(2).split("\t")]
        cells += [""] * (len(PROCEDURES) - len(cells))
        parsed = tuple(None if c in ("*", "") else float(c) for c in cells)
        assert parsed == TABLE_I[int(match.group(1))], line


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def exam_entries(patient: int, run: str, column: int, value: float, day: int) -> list[dict[str, Any]]:
    """Patient, ImagingStudy, dose summary and one irradiation event, shaped as the RDSR mapping emits them."""
    name, modality, description = PROCEDURES[column]
    key = f"{run}-{patient}-{column}"
    study_uid = f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, key).int}"
    patient_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, run + str(patient))}"
    study_url = f"urn:uuid:{uuid.uuid4()}"
    when = f"2023-{1 + day // 28:02d}-{1 + day % 28:02d}T09:00:00Z"
    summary_components: list[dict[str, Any]] = [{
        "code": {"coding": [{"system": DCM, "code": "121058", "display": "Procedure reported"}]},
        "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                             "code": "77477000" if modality == "CT" else "71651007"}]}}]
    event_components: list[dict[str, Any]] = []
    if modality == "CT":
        summary_components.append({"code": {"coding": [{"system": DCM, "code": "113814",
                                                        "display": "CT Effective Dose Total"}]},
                                   "valueQuantity": _quantity(value, "mSv")})
    else:
        event_components.append({"code": {"coding": [{"system": DCM, "code": "113839", "display": "Effective Dose"}]},
                                 "valueQuantity": _quantity(value, "mSv")})
    observation = {"resourceType": "Observation", "status": "final", "subject": {"reference": patient_url},
                   "partOf": [{"reference": study_url}], "effectiveDateTime": when}
    return [
        {"fullUrl": patient_url, "resource": {
            "resourceType": "Patient", "birthDate": "1975-06-15",
            "identifier": [{"system": f"urn:dacs:test:table-i:{run}", "value": str(patient)}]},
         "request": {"method": "POST", "url": "Patient",
                     "ifNoneExist": f"identifier=urn:dacs:test:table-i:{run}|{patient}"}},
        {"fullUrl": study_url, "resource": {
            "resourceType": "ImagingStudy", "status": "available",
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}],
            "modality": [{"system": DCM, "code": modality}, {"system": DCM, "code": "SR"}],
            "subject": {"reference": patient_url}, "started": when, "description": f"{description} ({name})"},
         "request": {"method": "PUT", "url": f"ImagingStudy?identifier=urn:dicom:uid|urn:oid:{study_uid}"}},
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": {
            **observation, "identifier": [{"system": "urn:dacs:dose-accumulation", "value": f"{study_uid}/1"}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "73569-6"}]},
            "focus": [{"reference": study_url}], "component": summary_components},
         "request": {"method": "PUT", "url": f"Observation?identifier=urn:dacs:dose-accumulation|{study_uid}/1"}},
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": {
            **observation, "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}.1"}],
            "code": {"coding": [{"system": DCM, "code": "113852", "display": "Irradiation Event"}]},
            "component": event_components or [{"code": {"coding": [{"system": DCM, "code": "113820"}]},
                                                "valueCodeableConcept": {"coding": [{"system": DCM,
                                                                                     "code": "113804"}]}}]},
         "request": {"method": "PUT", "url": f"Observation?identifier=urn:dicom:uid|urn:oid:{study_uid}.1"}},
    ]


def test_table_one_dose_summaries(server: RunningServer) -> None:
    run = uuid.uuid4().hex[:8]
    patients: dict[int, str] = {}
    for patient, row in TABLE_I.items():
        day = 0
        for column, value in enumerate(row):
            if value is None:
                continue
            response = post_bundle(server, exam_entries(patient, run, column, value, day))
            day += 40  # exams weeks apart: no repeat examinations
            study_id = study_of(response)
            evaluated = httpx.post(f"{server.base}/ImagingStudy/{study_id}/$evaluate-dose", timeout=30)
            assert evaluated.status_code == 200, evaluated.text
            patients[patient] = next(e["response"]["location"].split("/")[1] for e in response["entry"]
                                     if e["response"].get("location", "").startswith("Patient/"))
    for patient, row in TABLE_I.items():
        summary = httpx.get(f"{server.base}/Patient/{patients[patient]}/$dose-summary", timeout=10).json()
        total = values(summary, "cumulative-effective-dose")[0]
        assert total["code"] == "mSv"
        assert round(total["value"], 2) == PAPER_TOTALS[patient], f"patient {patient}"
        present = [(PROCEDURES[c][1], v) for c, v in enumerate(row) if v is not None]
        assert values(summary, "exam-count") == [len(present)]
        assert values(summary, "exams-without-effective-dose") == [0]
        rows = [parts(r) for r in values(summary, "exam")]
        assert [r["effective-dose"]["value"] for r in rows] == [v for _, v in present]  # oldest first = table order
        assert all(r["method"] == "recorded-in-dose-report" for r in rows)
        by_modality = {p["modality"]: p for p in map(parts, values(summary, "modality-total"))}
        for modality in {m for m, _ in present}:
            expected = sum(v for m, v in present if m == modality)
            assert by_modality[modality]["count"] == sum(1 for m, _ in present if m == modality)
            assert by_modality[modality]["effective-dose"]["value"] == pytest.approx(expected, abs=5e-5)
        assert values(summary, "alert") == []  # all totals are far below the cumulative alert level
