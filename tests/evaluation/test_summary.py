"""``dose_summary`` on SQLite and mongomock: rows, totals in mixed units, periods, fallbacks, alerts."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.errors import FhirError, NotFound
from fhir_server.evaluation import DoseEvaluator, dose_summary
from fhir_server.evaluation.summary import exam_rows
from fhir_server.service import FhirService
from tests.evaluation.conftest import ct_exam, fluoro_exam, next_number, store_report


def patient_id(service: FhirService, study_id: str) -> str:
    return service.read("ImagingStudy", study_id).resource()["subject"]["reference"].split("/")[1]


def value(parameters: dict[str, Any], name: str) -> Any:
    return next(next(v for k, v in p.items() if k.startswith("value")) for p in parameters["parameter"]
                if p["name"] == name)


def totals(parameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for p in parameters["parameter"]:
        if p["name"] == "modality-total":
            parts = {x["name"]: next(v for k, v in x.items() if k.startswith("value")) for x in p["part"]}
            out[parts["modality"]] = parts
    return out


def to_cgy_cm2(entries: list[dict[str, Any]]) -> None:
    """Store the report's DAP values in cGy.cm2 instead of Gy.m2 (1 Gy.m2 = 1e6 cGy.cm2)."""
    for e in entries:
        for comp in e["resource"].get("component", []):
            q = comp.get("valueQuantity")
            if q and q["code"] == "Gy.m2":
                q.update(value=q["value"] * 1e6, unit="cGy.cm2", code="cGy.cm2")


def test_rows_totals_and_mixed_units(service: FhirService, evaluator: DoseEvaluator) -> None:
    patient = f"P{next_number()}"
    ct = store_report(service, ct_exam(patient=patient, dlp="350", date="20240110"))
    rf1 = store_report(service, fluoro_exam(patient=patient, ka_r_gy="0.5", dap_gym2="0.003", date="20240201"))
    rf2 = store_report(service, fluoro_exam(patient=patient, ka_r_gy="0.7", dap_gym2="0.002", date="20240301"),
                       edit=to_cgy_cm2)
    for study in (ct, rf1):  # rf2 is left unevaluated: its values come from its dose report
        evaluator.evaluate_study(study)
    pid = patient_id(service, ct)
    result = dose_summary(service, pid)
    assert value(result, "exam-count") == 3
    rows = exam_rows(result)
    assert [r["study"]["reference"] for r in rows] == [f"ImagingStudy/{s}" for s in (ct, rf1, rf2)]
    assert rows[0]["dlp"]["value"] == 350 and rows[0]["standard-procedure"]["code"] == "CT-CHEST"
    assert rows[0]["description"] == "TDM THORACIQUE" and rows[0]["modality"] == "CT"
    assert [r["dap"] for r in rows[1:]] == [{"value": 30.0, "unit": "Gy.cm2", "system": "http://unitsofmeasure.org",
                                             "code": "Gy.cm2"}, {"value": 20.0, "unit": "Gy.cm2",
                                                                 "system": "http://unitsofmeasure.org",
                                                                 "code": "Gy.cm2"}]
    assert [r["ka-r"]["value"] for r in rows[1:]] == [500, 700]
    by_modality = totals(result)
    assert by_modality["RF"]["count"] == 2 and by_modality["RF"]["dap"]["value"] == 50
    assert by_modality["RF"]["ka-r"]["value"] == 1200
    assert by_modality["CT"]["dlp"]["value"] == 350
    # only the CT exam has an effective dose (no verified DAP coefficient for fluoroscopy)
    assert value(result, "cumulative-effective-dose")["value"] == pytest.approx(rows[0]["effective-dose"]["value"],
                                                                                abs=1e-4)
    assert value(result, "exams-without-effective-dose") == 2
    assert "ct-dlp-k-factor: 1" in value(result, "method") and "2 examination(s)" in value(result, "method")


def test_period_bounds_are_inclusive(service: FhirService, evaluator: DoseEvaluator) -> None:
    patient = f"P{next_number()}"
    studies = [store_report(service, ct_exam(patient=patient, date=d)) for d in ("20240131", "20240201", "20240229",
                                                                                "20240301")]
    evaluator.evaluate_studies(studies)
    pid = patient_id(service, studies[0])
    february = dose_summary(service, pid, "2024-02-01", "2024-02-29")
    assert [r["study"]["reference"] for r in exam_rows(february)] == [f"ImagingStudy/{s}" for s in studies[1:3]]
    assert value(dose_summary(service, pid, start="2024-03"), "exam-count") == 1
    assert value(dose_summary(service, pid, end="2024-01-31"), "exam-count") == 1
    with pytest.raises(FhirError):
        dose_summary(service, pid, start="last week")


def test_recorded_effective_dose_of_an_unevaluated_exam(service: FhirService) -> None:
    def add_recorded(entries: list[dict[str, Any]]) -> None:
        for e in entries:
            if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "73569-6":
                e["resource"]["component"].append({
                    "code": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "113814"}]},
                    "valueQuantity": {"value": 0.0042, "unit": "Sv", "system": "http://unitsofmeasure.org",
                                      "code": "Sv"}})

    study = store_report(service, ct_exam(patient=f"P{next_number()}"), edit=add_recorded)
    result = dose_summary(service, patient_id(service, study))
    [row] = exam_rows(result)
    assert row["effective-dose"]["value"] == pytest.approx(4.2) and row["method"] == "recorded-in-dose-report"


def test_open_alerts_only(service: FhirService, evaluator: DoseEvaluator, site_reference) -> None:
    patient = f"P{next_number()}"
    high = store_report(service, ct_exam(patient=patient, dlp="1000", date="20240105"))
    evaluator.evaluate_study(high)
    pid = patient_id(service, high)
    [alert] = [p["resource"] for p in dose_summary(service, pid)["parameter"] if p["name"] == "alert"]
    assert alert["resourceType"] == "DetectedIssue" and alert["status"] == "final"
    site_reference("policy.json", {"kind": "evaluation-policy", "version": "no drl", "source": {"citation": "t"},
                                   "policy": {"drl_set_priority": []}})
    evaluator.evaluate_study(high)  # the finding is withdrawn: no longer an open alert
    assert [p for p in dose_summary(service, pid)["parameter"] if p["name"] == "alert"] == []


def test_unknown_patient(service: FhirService) -> None:
    with pytest.raises(NotFound):
        dose_summary(service, "nobody")
