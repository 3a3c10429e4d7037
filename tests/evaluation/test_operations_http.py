"""The dose and terminology operations over real HTTP against ``dacs serve`` (SQLite store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from fhir_server.validation import validate_resource
from mappings.rdsr import map_dose_report
from terminology.codes import DCM, SCT, SRT, UCUM, dacs_system
from tests.evaluation.conftest import ct_exam, next_number
from tests.fhir_server.conftest import RunningServer

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def post_bundle(server: RunningServer, entries: list[dict[str, Any]]) -> dict[str, Any]:
    response = httpx.post(server.base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                          headers=FHIR_JSON, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def study_of(response: dict[str, Any]) -> str:
    [location] = [e["response"]["location"] for e in response["entry"]
                  if e["response"].get("location", "").startswith("ImagingStudy/")]
    return location.split("/")[1]


def values(parameters: dict[str, Any], name: str) -> list[Any]:
    out = []
    for p in parameters["parameter"]:
        if p["name"] == name:
            out.append(next((v for k, v in p.items() if k.startswith("value") or k in ("part", "resource")), None))
    return out


def parts(part: list[dict[str, Any]]) -> dict[str, Any]:
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in part}


def test_evaluate_dose_over_http(server: RunningServer, samples_dir: Path) -> None:
    bundle = map_dose_report(pydicom.dcmread(samples_dir / "rdsr" / "ct_siemens_flash_tap_ss.dcm")).bundle
    study_id = study_of(post_bundle(server, bundle["entry"]))
    url = f"{server.base}/ImagingStudy/{study_id}/$evaluate-dose"
    response = httpx.post(url, timeout=30)
    assert response.status_code == 200, response.text
    result = response.json()
    validate_resource(result, "Parameters")
    protocol = parts(values(result, "protocol")[0])
    assert protocol["status"] == "mapped" and protocol["standard-procedure"]["code"] == "CT-CAP"
    effective = parts(values(result, "effective-dose")[0])
    assert effective["value"]["code"] == "mSv" and effective["value"]["value"] > 0
    [finding] = [parts(f) for f in values(result, "finding")]
    assert finding["code"]["code"] == "drl-exceeded" and finding["action"] == "created"
    issue = httpx.get(f"{server.base}/{finding['issue']['reference']}", timeout=10).json()
    assert issue["resourceType"] == "DetectedIssue" and issue["status"] == "final"
    assert issue["implicated"] == [{"reference": f"ImagingStudy/{study_id}"}]
    # re-evaluation: the same issue, nothing written
    again = httpx.post(url, timeout=30).json()
    assert [parts(f)["action"] for f in values(again, "finding")] == ["unchanged"]
    assert values(again, "written") == [0]
    # it changes data: GET is refused
    assert httpx.get(url, timeout=10).status_code == 405


def test_evaluate_dose_unknown_study_is_404(server: RunningServer) -> None:
    response = httpx.post(f"{server.base}/ImagingStudy/does-not-exist/$evaluate-dose", timeout=10)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_dose_summary_over_http(server: RunningServer) -> None:
    patient = f"P{next_number()}"
    ids = []
    for date, dlp in (("20240105", "400"), ("20240210", "900"), ("20240320", "250")):
        entries = map_dose_report(ct_exam(patient=patient, dlp=dlp, date=date)).bundle["entry"]
        ids.append(study_of(post_bundle(server, entries)))
    evaluations = []
    for study_id in ids[:2]:  # the third stays unevaluated: its row comes from the dose report
        response = httpx.post(f"{server.base}/ImagingStudy/{study_id}/$evaluate-dose", timeout=30)
        assert response.status_code == 200
        evaluations.append(response.json())
    # the second exam's running total covers both (36 days apart, inside the 90-day policy window)
    cumulative = parts(values(evaluations[1], "cumulative-effective-dose")[0])
    doses = [parts(values(e, "effective-dose")[0])["value"]["value"] for e in evaluations]
    assert cumulative["exam-count"] == 2 and cumulative["window"]["value"] == 90
    assert cumulative["value"]["value"] == pytest.approx(sum(doses), abs=1e-3)
    pid = httpx.get(f"{server.base}/Patient", params={"identifier": f"urn:dacs:issuer:local|{patient}"},
                    timeout=10).json()["entry"][0]["resource"]["id"]
    result = httpx.get(f"{server.base}/Patient/{pid}/$dose-summary", timeout=10).json()
    validate_resource(result, "Parameters")
    assert values(result, "exam-count") == [3]
    rows = [parts(r) for r in values(result, "exam")]
    assert [r["study"]["reference"] for r in rows] == [f"ImagingStudy/{i}" for i in ids]
    assert [r["dlp"]["value"] for r in rows] == [400, 900, 250]
    assert all(r["ctdivol"]["value"] == 8 for r in rows[:2]) and "ctdivol" not in rows[2]
    assert "effective-dose" not in rows[2] and values(result, "exams-without-effective-dose") == [1]
    total = values(result, "cumulative-effective-dose")[0]["value"]
    assert total == pytest.approx(rows[0]["effective-dose"]["value"] + rows[1]["effective-dose"]["value"], abs=1e-3)
    [ct] = [parts(p) for p in values(result, "modality-total")]
    assert ct["modality"] == "CT" and ct["count"] == 3 and ct["dlp"]["value"] == 1550
    alerts = values(result, "alert")
    assert [a["code"]["coding"][0]["code"] for a in alerts] == ["drl-exceeded"]  # the 900 mGy.cm chest CT
    period = httpx.get(f"{server.base}/Patient/{pid}/$dose-summary",
                       params={"start": "2024-02-01", "end": "2024-02-29"}, timeout=10).json()
    assert values(period, "exam-count") == [1]
    assert [parts(r)["dlp"]["value"] for r in values(period, "exam")] == [900]
    # POST with a Parameters body works the same
    body = {"resourceType": "Parameters", "parameter": [{"name": "start", "valueDate": "2024-03-01"}]}
    posted = httpx.post(f"{server.base}/Patient/{pid}/$dose-summary", json=body, headers=FHIR_JSON, timeout=10)
    assert values(posted.json(), "exam-count") == [1]


def test_dose_summary_errors(server: RunningServer) -> None:
    assert httpx.get(f"{server.base}/Patient/nobody/$dose-summary", timeout=10).status_code == 404
    entries = map_dose_report(ct_exam(patient=f"P{next_number()}")).bundle["entry"]
    post_bundle(server, entries)
    pid = httpx.get(f"{server.base}/Patient", params={"_count": "1"}, timeout=10).json()["entry"][0]["resource"]["id"]
    bad = httpx.get(f"{server.base}/Patient/{pid}/$dose-summary", params={"start": "yesterday"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_operations_are_declared(server: RunningServer) -> None:
    statement = httpx.get(f"{server.base}/metadata", timeout=10).json()
    declared = {op["name"] for r in statement["rest"][0]["resource"] for op in r.get("operation", [])}
    declared |= {op["name"] for op in statement["rest"][0].get("operation", [])}
    assert {"evaluate-dose", "dose-summary", "lookup", "validate-code", "translate"} <= declared
    for code in ("evaluate-dose", "dose-summary", "lookup", "validate-code", "translate"):
        definition = httpx.get(f"{server.base}/OperationDefinition/{code}", timeout=10)
        assert definition.status_code == 200 and definition.json()["code"] == code


# --- terminology ------------------------------------------------------------------------------------------


def test_lookup_get_and_post(server: RunningServer) -> None:
    got = httpx.get(f"{server.base}/CodeSystem/$lookup", params={"system": DCM, "code": "113813"}, timeout=10)
    assert got.status_code == 200
    validate_resource(got.json(), "Parameters")
    assert values(got.json(), "display") == ["CT Dose Length Product Total"]
    body = {"resourceType": "Parameters",
            "parameter": [{"name": "coding", "valueCoding": {"system": SRT, "code": "T-D3000"}}]}
    posted = httpx.post(f"{server.base}/CodeSystem/$lookup", json=body, headers=FHIR_JSON, timeout=10)
    assert posted.status_code == 200
    [snomed] = [parts(p)["value"] for p in values(posted.json(), "property")]
    assert snomed["system"] == SCT and snomed["code"] == "51185008"  # legacy SRT chest -> SNOMED CT
    instance = httpx.get(f"{server.base}/CodeSystem/dose-finding/$lookup", params={"code": "drl-exceeded"},
                         timeout=10)
    assert values(instance.json(), "display") == ["Diagnostic reference level exceeded"]


def test_lookup_errors(server: RunningServer) -> None:
    unknown = httpx.get(f"{server.base}/CodeSystem/$lookup", params={"system": "http://example.org/x", "code": "1"},
                        timeout=10)
    assert unknown.status_code == 404 and unknown.json()["resourceType"] == "OperationOutcome"
    missing = httpx.get(f"{server.base}/CodeSystem/$lookup", params={"system": DCM}, timeout=10)
    assert missing.status_code == 400
    unknown_code = httpx.get(f"{server.base}/CodeSystem/$lookup", params={"system": DCM, "code": "999999"},
                             timeout=10)
    assert unknown_code.status_code == 404


def test_validate_code(server: RunningServer) -> None:
    finding_vs = "http://dacs.example.org/fhir/ValueSet/dose-finding"
    finding_cs = dacs_system("dose-finding")
    ok = httpx.get(f"{server.base}/ValueSet/$validate-code",
                   params={"url": finding_vs, "system": finding_cs, "code": "drl-exceeded"}, timeout=10).json()
    assert values(ok, "result") == [True]
    no = httpx.get(f"{server.base}/ValueSet/$validate-code",
                   params={"url": finding_vs, "system": finding_cs, "code": "nope"}, timeout=10).json()
    assert values(no, "result") == [False] and values(no, "message")
    instance = httpx.get(f"{server.base}/ValueSet/dose-finding/$validate-code",
                         params={"system": finding_cs, "code": "repeat-examination"}, timeout=10).json()
    assert values(instance, "result") == [True]
    unit = httpx.get(f"{server.base}/CodeSystem/$validate-code", params={"url": UCUM, "code": "mGy.cm"},
                     timeout=10).json()
    assert values(unit, "result") == [True]
    vendor = httpx.get(f"{server.base}/CodeSystem/$validate-code", params={"url": UCUM, "code": "mGycm"},
                       timeout=10).json()
    assert values(vendor, "result") == [False]
    wrong_display = httpx.get(f"{server.base}/CodeSystem/$validate-code",
                              params={"url": DCM, "code": "113813", "display": "something else"}, timeout=10).json()
    assert values(wrong_display, "result") == [False]
    missing = httpx.get(f"{server.base}/ValueSet/$validate-code",
                        params={"url": "http://example.org/ValueSet/none", "code": "x"}, timeout=10)
    assert missing.status_code == 404


def test_translate(server: RunningServer) -> None:
    got = httpx.get(f"{server.base}/ConceptMap/$translate", params={"system": SRT, "code": "T-D3000"}, timeout=10)
    result = got.json()
    assert values(result, "result") == [True]
    targets = {(m["concept"]["system"], m["concept"]["code"]) for m in map(parts, values(result, "match"))}
    assert (SCT, "51185008") in targets
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": SCT, "code": "51185008"}},
        {"name": "targetsystem", "valueUri": dacs_system("body-region")}]}
    posted = httpx.post(f"{server.base}/ConceptMap/$translate", json=body, headers=FHIR_JSON, timeout=10).json()
    assert [parts(m)["concept"]["code"] for m in values(posted, "match")] == ["chest"]
    none = httpx.get(f"{server.base}/ConceptMap/$translate", params={"system": SRT, "code": "no-such"},
                     timeout=10).json()
    assert values(none, "result") == [False]
    unknown_map = httpx.get(f"{server.base}/ConceptMap/$translate",
                            params={"url": "http://example.org/ConceptMap/x", "system": SRT, "code": "T-D3000"},
                            timeout=10)
    assert unknown_map.status_code == 404
