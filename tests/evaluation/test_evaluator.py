"""``DoseEvaluator.evaluate_study`` on stored dose reports: every rule, on SQLite and on mongomock.

Reports are stored the way ingest stores them (mapped with ``map_dose_report`` and applied in one
transaction): real vendor samples where they exercise a rule, small generated reports elsewhere.
Expected values are computed from the reference data files the rules cite (k-factors, DRLs, levels),
not copied from the implementation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from fhir_server.evaluation import DoseEvaluator
from fhir_server.evaluation.records import EVALUATION_SYSTEM
from fhir_server.service import FhirService
from terminology.age import age_at
from terminology.codes import DCM, dacs_system
from terminology.reference import load_reference
from tests.evaluation.conftest import ct_exam, fluoro_exam, next_number, store_report, store_sample

REF = load_reference()
K_SET = REF.k_factors[REF.policy.k_factor_sets["icrp103"][0]]


def k(region: str, age: float) -> float:
    band = K_SET.band_for(age)
    assert band is not None
    return K_SET.coefficients[region][band.label]


def drl(set_id: str, exam: str, quantity: str) -> float:
    return next(e.value for e in REF.drl_sets[set_id].entries if e.exam == exam and e.quantity == quantity)


def evaluation_resources(service: FhirService, type_: str, study_id: str) -> list[dict[str, Any]]:
    """Every current resource of ``type_`` whose evaluation identifier belongs to the study."""
    found = service.search(type_, [("identifier", f"{EVALUATION_SYSTEM}|"), ("_count", "1000")]).page.resources
    out = [r.resource() for r in found]
    return [r for r in out if any(i["value"].startswith(f"{study_id}/") for i in r["identifier"])]


def record(service: FhirService, study_id: str, key: str) -> dict[str, Any]:
    found = service.search("Observation", [("identifier", f"{EVALUATION_SYSTEM}|{study_id}/{key}")]).page.resources
    assert len(found) == 1, f"{key}: {len(found)} records"
    return found[0].resource()


def component(resource: dict[str, Any], system: str, code: str) -> dict[str, Any] | None:
    return next((c for c in resource.get("component", []) if any(
        x.get("system") == system and x.get("code") == code for x in c["code"].get("coding", []))), None)


def issues(service: FhirService, study_id: str) -> list[dict[str, Any]]:
    return evaluation_resources(service, "DetectedIssue", study_id)


# --- real samples ---------------------------------------------------------------------------------------


def test_sample_ct_above_drl_raises_one_detected_issue(service: FhirService, evaluator: DoseEvaluator,
                                                      samples_dir: Path) -> None:
    study_id = store_sample(service, samples_dir / "rdsr" / "ct_siemens_flash_tap_ss.dcm")
    report = evaluator.evaluate_study(study_id)
    ev = report.evaluation
    assert ev.mapping.code == "CT-CAP"  # "Thorax^TAP (Adult)"
    assert ev.exam.dlp_total is not None and ev.exam.dlp_total.value_in("mGy.cm") == pytest.approx(724.52)
    age = age_at("1929-05-19", ev.exam.date or "")
    assert ev.effective_dose is not None
    assert ev.effective_dose.value_msv == pytest.approx(724.52 * k("chest_abdomen_pelvis", age))

    # the Moroccan sets (first in the policy) have no CT-CAP level: the UK NDRL applies
    limit = drl("gb-ndrl-2022-adult-ct", "CT-CAP", "DLP")
    assert limit < 724.52
    [issue] = issues(service, study_id)
    assert issue["status"] == "final"
    assert issue["code"]["coding"][0] == {"system": dacs_system("dose-finding"), "code": "drl-exceeded"}
    assert "gb-ndrl-2022-adult-ct" in issue["code"]["text"]
    assert issue["severity"] == "moderate"
    assert issue["implicated"] == [{"reference": f"ImagingStudy/{study_id}"}]
    assert issue["patient"]["reference"].startswith("Patient/")
    summary_id = ev.exam.summary_ids[0]
    evidence = {r["reference"] for r in issue["evidence"][0]["detail"]}
    assert f"Observation/{summary_id}" in evidence
    assert f"Observation/{report.records['drl-comparison']}" in evidence
    assert f"{limit:g} mGy.cm" in issue["detail"] and "724.5 mGy.cm" in issue["detail"]


def test_sample_with_recorded_dose_check_alert(service: FhirService, evaluator: DoseEvaluator,
                                               samples_dir: Path) -> None:
    study_id = store_sample(service, samples_dir / "rdsr" / "ct_toshiba_aquilion_precision_dosecheck.dcm")
    report = evaluator.evaluate_study(study_id)
    checks = [c.check for c in report.evaluation.thresholds]
    assert checks and all(c.threshold_set == "rdsr-tid10015" for c in checks)
    reached = [c for c in checks if c.exceeded]
    assert reached and all(c.value.value >= c.threshold.value_in(c.value.unit) for c in reached)
    found = [i["code"]["coding"][0]["code"] for i in issues(service, study_id)]
    # an exam-level alert recorded on several acquisitions is one issue per quantity; notifications are per series
    alerts = {c.quantity for c in reached if c.level == "alert"}
    notifications = {(e.check.quantity, e.evidence_id) for e in report.evaluation.thresholds
                     if e.check.exceeded and e.check.level == "notification"}
    assert sorted(found) == sorted(["ct-alert-value-exceeded"] * len(alerts)
                                   + ["ct-notification-value-exceeded"] * len(notifications))
    assert found


def test_sample_fluoroscopy_above_substantial_dose_level(service: FhirService, evaluator: DoseEvaluator,
                                                         samples_dir: Path) -> None:
    study_id = store_sample(service, samples_dir / "rdsr" / "xa_no_manufacturer_316_events.dcm")
    ev = evaluator.evaluate_study(study_id).evaluation
    level = next(t for t in REF.fluoro_thresholds["ncrp168-srdl"].thresholds if t.quantity == "Ka,r")
    assert ev.exam.dose_rp_total is not None and ev.exam.dose_rp_total.value_in("Gy") >= level.value
    [issue] = issues(service, study_id)
    assert issue["code"]["coding"][0]["code"] == "fluoro-substantial-dose"
    assert issue["severity"] == "high"
    assert "NCRP" in issue["detail"] and "follow" in issue["detail"].lower()


def test_every_sample_evaluates_and_is_stable(service: FhirService, evaluator: DoseEvaluator,
                                              samples_dir: Path) -> None:
    """Every mappable sample gets an evaluation record; evaluating again writes nothing."""
    import pydicom

    from mappings.rdsr import RdsrMappingError

    paths = sorted((samples_dir / "rdsr").glob("*.dcm"))[::3]  # a third of the corpus keeps this quick
    for path in paths:
        try:
            study_id = store_report(service, pydicom.dcmread(path))
        except RdsrMappingError:
            continue
        first = evaluator.evaluate_study(study_id)
        assert first.written >= 2  # the record and the Provenance at least
        assert record(service, study_id, "effective-dose")["partOf"] == [{"reference": f"ImagingStudy/{study_id}"}]
        assert evaluator.evaluate_study(study_id).written == 0, path.name


# --- constructed cases ----------------------------------------------------------------------------------


def test_drl_priority_local_set_decides(service: FhirService, evaluator: DoseEvaluator) -> None:
    """Head CT, DLP 900: above the UK level (790) but below El Mansouri 2022 (1020), which comes first."""
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", description="Scanner cérébral",
                                             dlp="900", ctdivol="40", target=("T-D1100", "SRT", "Head")))
    report = evaluator.evaluate_study(study_id)
    assert report.evaluation.mapping.code == "CT-HEAD"
    assert drl("gb-ndrl-2022-adult-ct", "CT-HEAD", "DLP") < 900 < drl("ma-el-mansouri-2022-adult-ct", "CT-HEAD", "DLP")
    assert issues(service, study_id) == []
    comparison = record(service, study_id, "drl-comparison")
    flags = {(c["code"]["text"].split(" vs DRL ")[1].split(" ")[0], c["code"]["coding"][0]["code"]):
             c["interpretation"][0]["coding"][0]["code"] for c in comparison["component"]}
    assert flags[("ma-el-mansouri-2022-adult-ct", "DLP")] == "N"
    assert flags[("gb-ndrl-2022-adult-ct", "DLP")] == "H"
    high = next(c for c in comparison["component"] if "gb-ndrl" in c["code"]["text"] and
                c["code"]["coding"][0]["code"] == "DLP")
    assert high["referenceRange"][0]["high"]["value"] == pytest.approx(790)


def test_drl_exceeded_by_local_level(service: FhirService, evaluator: DoseEvaluator) -> None:
    limit = drl("ma-el-mansouri-2022-adult-ct", "CT-CHEST", "DLP")
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", dlp=str(limit + 50)))
    report = evaluator.evaluate_study(study_id)
    [finding] = report.findings
    assert finding.code == "drl-exceeded" and finding.action == "created"
    [issue] = issues(service, study_id)
    assert issue["id"] == finding.id
    assert "ma-el-mansouri-2022-adult-ct" in issue["code"]["text"]
    assert "Radioprotection" in issue["detail"]  # the source of the level


def test_paediatric_patient_uses_age_band_and_no_adult_drl(service: FhirService, evaluator: DoseEvaluator) -> None:
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", birth="20190101",
                                             description="Scanner cérébral", dlp="2000", ctdivol="80",
                                             target=("T-D1100", "SRT", "Head")))
    report = evaluator.evaluate_study(study_id)
    ev = report.evaluation
    assert ev.age_years == pytest.approx(age_at("2019-01-01", "2024-03-01"))
    assert ev.effective_dose is not None
    assert ev.effective_dose.value_msv == pytest.approx(2000 * k("head", ev.age_years))
    assert k("head", ev.age_years) != k("head", 40)  # a paediatric band, not the adult one
    assert ev.drl == () and issues(service, study_id) == []  # 2000 mGy.cm would exceed every adult head DRL
    assert any("paediatric" in n for n in ev.notes)
    age = component(record(service, study_id, "effective-dose"), "http://loinc.org", "30525-0")
    assert age is not None and age["valueQuantity"]["code"] == "a"


def test_missing_age_assumes_adult_and_says_so(service: FhirService, evaluator: DoseEvaluator) -> None:
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", birth=None, dlp="300"))
    ev = evaluator.evaluate_study(study_id).evaluation
    assert ev.age_years is None
    assert ev.effective_dose is not None and ev.effective_dose.value_msv == pytest.approx(300 * k("chest", 40))
    rec = record(service, study_id, "effective-dose")
    notes = " ".join(n["text"] for n in rec["note"])
    assert "age unknown" in notes and "adult" in notes
    assert component(rec, "http://loinc.org", "30525-0") is None
    assert ev.drl  # adult DRLs are still compared (policy 'assume-adult')


def test_missing_age_refused_by_site_policy(service: FhirService, evaluator: DoseEvaluator, site_reference) -> None:
    site_reference("policy.json", {"kind": "evaluation-policy", "version": "test", "source": {"citation": "test"},
                                   "policy": {"missing_age": "refuse"}})
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", birth=None, dlp="300"))
    ev = evaluator.evaluate_study(study_id).evaluation
    assert ev.effective_dose is None and ev.drl == ()
    rec = record(service, study_id, "effective-dose")
    assert "valueQuantity" not in rec and "refuses" in rec["dataAbsentReason"]["text"]


def test_unmapped_exam_is_recorded_without_effective_dose(service: FhirService, evaluator: DoseEvaluator) -> None:
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", description="Protocole 7", target=None))
    report = evaluator.evaluate_study(study_id)
    assert report.evaluation.mapping.status == "unmapped"
    rec = record(service, study_id, "effective-dose")
    assert rec["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    proc = component(rec, "urn:dacs:evaluation-component", "standard-procedure")
    assert proc is not None and "valueCodeableConcept" not in proc and proc["dataAbsentReason"]["text"]
    assert issues(service, study_id) == []
    # the physicist's work list: unmapped exams are found by search
    found = service.search("Observation", [("code", f"{DCM}|113839"),
                                           ("component-data-absent-reason", "unknown")]).page.resources
    assert any(r.id == report.records["effective-dose"] for r in found)


def test_region_without_k_factor(service: FhirService, evaluator: DoseEvaluator) -> None:
    """CT of the whole body: mapped, but no verified k-factor for the region."""
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", description="CT CORPS ENTIER",
                                             target=("T-D0010", "SRT", "Entire body")))
    ev = evaluator.evaluate_study(study_id).evaluation
    assert ev.mapping.code is not None
    assert ev.effective_dose is None
    assert any("k-factor" in n for n in ev.notes)


def test_mixed_units_give_the_same_results(service: FhirService, evaluator: DoseEvaluator) -> None:
    """The same exam stored with its DLP in Gy.cm and in mGy.cm evaluates identically."""
    def to_gy_cm(entries: list[dict[str, Any]]) -> None:
        for e in entries:
            for comp in e["resource"].get("component", []):
                q = comp.get("valueQuantity")
                if q and q["code"] == "mGy.cm":
                    q.update(value=q["value"] / 1000, unit="Gy.cm", code="Gy.cm")

    limit = drl("ma-el-mansouri-2022-adult-ct", "CT-CHEST", "DLP")
    plain = store_report(service, ct_exam(patient=f"P{next_number()}", dlp=str(limit + 8)))
    converted = store_report(service, ct_exam(patient=f"P{next_number()}", dlp=str(limit + 8)), edit=to_gy_cm)
    a, b = evaluator.evaluate_study(plain).evaluation, evaluator.evaluate_study(converted).evaluation
    assert b.exam.dlp_total is not None and b.exam.dlp_total.unit == "Gy.cm"
    assert a.effective_dose and b.effective_dose
    assert a.effective_dose.value_msv == pytest.approx(b.effective_dose.value_msv)
    assert [f.code for f in a.findings] == [f.code for f in b.findings] == ["drl-exceeded"]
    rec = record(service, converted, "effective-dose")
    dlp = component(rec, DCM, "113813")
    assert dlp is not None and dlp["valueQuantity"] == {"value": pytest.approx(limit + 8), "unit": "mGy.cm",
                                                         "system": "http://unitsofmeasure.org", "code": "mGy.cm"}


def test_reevaluation_updates_instead_of_duplicating(service: FhirService, evaluator: DoseEvaluator) -> None:
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", dlp="5000"))
    first = evaluator.evaluate_study(study_id)
    observations = evaluation_resources(service, "Observation", study_id)
    found = issues(service, study_id)
    assert first.written == len(observations) + len(found) + 1  # + the Provenance
    second = evaluator.evaluate_study(study_id)
    assert second.written == 0
    assert [i.action for i in second.issues] == ["unchanged"] * len(found)
    assert len(evaluation_resources(service, "Observation", study_id)) == len(observations)
    again = issues(service, study_id)
    assert [i["id"] for i in again] == [i["id"] for i in found]
    assert all(i["meta"]["versionId"] == "1" for i in again)
    assert service.read("Provenance", first.provenance_id).version == 1


def test_resolved_findings_are_withdrawn_and_come_back(service: FhirService, evaluator: DoseEvaluator,
                                                        site_reference) -> None:
    limit = drl("ma-el-mansouri-2022-adult-ct", "CT-CHEST", "DLP")
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", dlp=str(limit * 1.5)))
    [created] = evaluator.evaluate_study(study_id).findings
    # the site raises its local chest DLP level above the exam's value
    raised = {"kind": "drl-sets", "version": "test", "sets": [{
        "id": "ma-el-mansouri-2022-adult-ct", "title": "site override", "kind": "local", "country": "MA",
        "population": "adult", "year": 2026, "status": "active", "source": {"citation": "site audit 2026"},
        "entries": [{"exam": "CT-CHEST", "label": "Chest", "modality": "CT", "quantity": "DLP",
                     "value": limit * 2, "unit": "mGy.cm", "per": "examination"}]}]}
    path = site_reference("drl.json", raised)
    report = evaluator.evaluate_study(study_id)
    [withdrawn] = report.withdrawn
    assert withdrawn.id == created.id
    issue = service.read("DetectedIssue", created.id).resource()
    assert issue["status"] == "entered-in-error" and issue["detail"].startswith("Withdrawn on")
    # the UK level (290) would be exceeded, but the site's first set decides: no open finding
    assert report.findings == ()
    path.unlink()
    back = evaluator.evaluate_study(study_id)
    assert [(f.id, f.action) for f in back.findings] == [(created.id, "updated")]
    assert service.read("DetectedIssue", created.id).resource()["status"] == "final"


def test_result_no_longer_produced_is_withdrawn(service: FhirService, evaluator: DoseEvaluator,
                                                site_reference) -> None:
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}"))
    comparison_id = evaluator.evaluate_study(study_id).records["drl-comparison"]
    site_reference("policy.json", {"kind": "evaluation-policy", "version": "no drl", "source": {"citation": "t"},
                                   "policy": {"drl_set_priority": []}})
    report = evaluator.evaluate_study(study_id)
    assert "drl-comparison" not in report.records
    assert service.read("Observation", comparison_id).resource()["status"] == "entered-in-error"


def test_recorded_alert_value(service: FhirService, evaluator: DoseEvaluator) -> None:
    """The scanner's DLP alert value (300) against the accumulated forward estimate it recorded."""
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", dlp="400", dose_check=True))
    report = evaluator.evaluate_study(study_id)
    alert = [c.check for c in report.evaluation.thresholds if c.check.level == "alert"]
    assert [(c.quantity, c.threshold.value, c.exceeded) for c in alert] == [("DLP", 300.0, True)]
    [finding] = report.findings
    assert finding.code == "ct-alert-value-exceeded" and finding.severity == "moderate"
    rec = record(service, study_id, "threshold-comparison")
    [comp] = rec["component"]
    assert comp["referenceRange"][0]["high"]["value"] == 300 and comp["interpretation"][0]["coding"][0]["code"] == "H"


@pytest.mark.parametrize(("ka_r", "reached"), [("6", True), ("5", True), ("4.9", False)])
def test_fluoroscopy_substantial_dose_level(service: FhirService, evaluator: DoseEvaluator, ka_r: str,
                                            reached: bool) -> None:
    study_id = store_report(service, fluoro_exam(patient=f"P{next_number()}", ka_r_gy=ka_r))
    report = evaluator.evaluate_study(study_id)
    assert [f.code for f in report.findings] == (["fluoro-substantial-dose"] if reached else [])
    rec = record(service, study_id, "threshold-comparison")
    assert rec["component"][0]["valueQuantity"]["value"] == pytest.approx(float(ka_r) * 1000)


def test_cumulative_effective_dose_over_the_window(service: FhirService, evaluator: DoseEvaluator) -> None:
    patient = f"P{next_number()}"
    policy = REF.policy.cumulative_effective_dose
    per_exam = 3000 * k("chest", 40)  # mSv for a 3000 mGy.cm chest CT
    needed = math.ceil(policy["threshold"] / per_exam)
    studies = [store_report(service, ct_exam(patient=patient, dlp="3000", date=f"202403{day:02d}"))
               for day in range(1, needed + 1)]
    outside = store_report(service, ct_exam(patient=patient, dlp="3000", date="20231001"))
    evaluator.evaluate_study(outside)
    reports = [evaluator.evaluate_study(s) for s in studies]
    assert all("cumulative-effective-dose-exceeded" not in [f.code for f in r.findings] for r in reports[:-1])
    last = reports[-1]
    cumulative = last.evaluation.cumulative
    assert cumulative is not None and cumulative.window_days == policy["window_days"]
    assert cumulative.value_msv == pytest.approx(needed * per_exam)  # the October exam is outside the window
    [finding] = [f for f in last.findings if f.code == "cumulative-effective-dose-exceeded"]
    issue = service.read("DetectedIssue", finding.id).resource()
    assert {r["reference"] for r in issue["implicated"]} == {f"ImagingStudy/{s}" for s in studies}
    rec = record(service, studies[-1], "cumulative-effective-dose")
    assert rec["valueQuantity"]["value"] == pytest.approx(needed * per_exam)
    assert len(rec["derivedFrom"]) == needed


def test_repeat_examination(service: FhirService, evaluator: DoseEvaluator) -> None:
    patient = f"P{next_number()}"
    first = store_report(service, ct_exam(patient=patient, time="090000"))
    second = store_report(service, ct_exam(patient=patient, time="113000"))
    later = store_report(service, ct_exam(patient=patient, date="20240320"))
    assert evaluator.evaluate_study(first).findings == ()
    [repeat] = evaluator.evaluate_study(second).findings
    assert repeat.code == "repeat-examination" and repeat.severity == "low"
    issue = service.read("DetectedIssue", repeat.id).resource()
    assert {r["reference"] for r in issue["implicated"]} == {f"ImagingStudy/{first}", f"ImagingStudy/{second}"}
    assert "2.5 h" in issue["detail"]
    assert evaluator.evaluate_study(later).findings == ()


def test_batch_evaluation_sees_earlier_studies_of_the_batch(service: FhirService,
                                                            evaluator: DoseEvaluator) -> None:
    patient = f"P{next_number()}"
    first = store_report(service, ct_exam(patient=patient, time="090000"))
    second = store_report(service, ct_exam(patient=patient, time="100000"))
    reports = evaluator.evaluate_studies([first, second])
    assert [f.code for r in reports for f in r.findings] == ["repeat-examination"]


def test_ssde_from_a_recorded_water_equivalent_diameter(service: FhirService, evaluator: DoseEvaluator) -> None:
    def add_diameter(entries: list[dict[str, Any]]) -> None:
        for e in entries:
            if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "113852":
                e["resource"]["component"].append({
                    "code": {"coding": [{"system": DCM, "code": "113980", "display": "Water Equivalent Diameter"}]},
                    "valueQuantity": {"value": 250, "unit": "mm", "system": "http://unitsofmeasure.org",
                                      "code": "mm"}})

    study_id = store_report(service, ct_exam(patient=f"P{next_number()}", ctdivol="10"), edit=add_diameter)
    report = evaluator.evaluate_study(study_id)
    [item] = report.evaluation.ssde
    fit = next(f for f in REF.ssde_fits.values() if f.phantom == "body-32cm")
    expected = fit.a * math.exp(-fit.b * 25.0) * 10
    assert item.result.value == pytest.approx(expected)
    rec = record(service, study_id, f"ssde/{item.event_id}")
    assert rec["valueQuantity"]["value"] == pytest.approx(expected, rel=1e-6)
    assert rec["derivedFrom"] == [{"reference": f"Observation/{item.event_id}"}]
    assert component(rec, DCM, "113980")["valueQuantity"]["value"] == 25.0  # type: ignore[index]


def test_organ_doses_use_the_tissue_weights(service: FhirService, evaluator: DoseEvaluator) -> None:
    """E = Σ w_T · w_R · D_T (source paper Eq. 1, Table II ICRP 103 weights) when organ doses are given."""
    doses = {"lung": 12.0, "breast": 10.0, "thyroid": 2.0, "oesophagus": 9.0}

    def add_organs(entries: list[dict[str, Any]]) -> None:
        for e in entries:
            if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "73569-6":
                e["resource"]["component"] += [{
                    "code": {"coding": [{"system": DCM, "code": "113518", "display": "Organ Dose"},
                                        {"system": "urn:dacs:icrp-tissue", "code": tissue}]},
                    "valueQuantity": {"value": value, "unit": "mGy", "system": "http://unitsofmeasure.org",
                                      "code": "mGy"}} for tissue, value in doses.items()]

    study_id = store_report(service, ct_exam(patient=f"P{next_number()}"), edit=add_organs)
    ev = evaluator.evaluate_study(study_id).evaluation
    weights = REF.tissue_weights["icrp103"].factors
    assert ev.effective_dose is not None and ev.effective_dose.method == "organ-dose-weighted-sum"
    assert ev.effective_dose.value_msv == pytest.approx(sum(weights[t] * d for t, d in doses.items()))
    rec = record(service, study_id, "effective-dose")
    assert rec["method"]["coding"][0]["code"] == "organ-dose-weighted-sum"


def test_provenance_names_inputs_and_coefficient_sources(service: FhirService, evaluator: DoseEvaluator) -> None:
    study_id = store_report(service, ct_exam(patient=f"P{next_number()}"))
    report = evaluator.evaluate_study(study_id)
    prov = service.read("Provenance", report.provenance_id).resource()
    targets = {t["reference"] for t in prov["target"]}
    assert {f"Observation/{i}" for i in report.records.values()} <= targets
    what = [e["what"] for e in prov["entity"]]
    assert {"reference": f"Observation/{report.evaluation.exam.summary_ids[0]}"} in what
    sets = {w["identifier"]["value"]: w["display"] for w in what if "identifier" in w}
    assert K_SET.id in sets and "Lee" in sets[K_SET.id]
    assert "ma-el-mansouri-2022-adult-ct" in sets
    rec = record(service, study_id, "effective-dose")
    assert rec["method"]["coding"][0] == {"system": dacs_system("calculation-method"), "code": "ct-dlp-k-factor"}
    k_comp = component(rec, "urn:dacs:evaluation-component", "coefficient")
    assert k_comp is not None and k_comp["valueQuantity"]["value"] == k("chest", 50)


def test_unknown_study_is_not_found(service: FhirService, evaluator: DoseEvaluator) -> None:
    from fhir_server.errors import NotFound

    with pytest.raises(NotFound):
        evaluator.evaluate_study("no-such-study")
