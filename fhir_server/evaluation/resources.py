"""FHIR R4 resources for evaluation results: Observations, DetectedIssues and one Provenance per exam.

Pure builders (plain dicts). Every evaluation resource carries the identifier
``urn:dacs:evaluation|<study id>/<key>`` so that re-evaluation finds and updates it; the evaluator writes
them with conditional PUTs. Component codes DACS needs but no standard names (standard procedure, body
region, modality, coefficient, window) use the local system :data:`COMPONENT_SYSTEM`.

Observation shapes (``<key>`` in brackets):

* ``[effective-dose]`` (always): code DCM 113839 *Effective Dose*, value in mSv or ``dataAbsentReason``
  with the reason, ``method`` the calculation method, components: standard procedure, body region,
  modality, study description (what a physicist maps an unmapped exam from), age at the exam (LOINC
  30525-0), the exam's DLP / highest CTDIvol / DAP / Ka,r / AGD and the coefficients used. It is the
  exam's evaluation record, which later evaluations and ``$dose-summary`` read; unmapped exams have the
  standard-procedure component absent with the reason.
* ``[drl-comparison]`` and ``[threshold-comparison]``: one component per comparison, ``referenceRange``
  the level, ``interpretation`` H (exceeded / reached) or N.
* ``[ssde/<event id>]``: code DCM 113930, per CT acquisition with a patient diameter.
* ``[cumulative-effective-dose]``: the patient's effective dose over the policy window ending at this exam,
  stored when it reaches the policy's alert level (it is the evidence of that DetectedIssue); below it,
  ``$evaluate-dose`` reports the running total and ``$dose-summary`` sums any period on request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from fhir_server.evaluation.records import EVALUATION_SYSTEM, ExamDose
from fhir_server.evaluation.rules import (
    RECORDED,
    Checked,
    CumulativeDose,
    DrlResult,
    ExamEvaluation,
    Finding,
    SsdeResult,
    source_text,
)
from terminology.codes import DCM, LOINC, UCUM, dacs_system
from terminology.reference import ReferenceData
from terminology.results import Calculation
from terminology.ucum import Quantity

COMPONENT_SYSTEM = "urn:dacs:evaluation-component"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CATEGORY = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                         "code": "imaging", "display": "Imaging"}]}]
AUTHOR = {"display": "DACS dose evaluation"}
REFERENCE_DATA_SYSTEM = "urn:dacs:reference-data"
_NAMESPACE = uuid.UUID("5b0c2f4e-6a3d-4c1e-9a55-2f6e0d7c9b11")

EFFECTIVE_DOSE_CODE = {"coding": [{"system": DCM, "code": "113839", "display": "Effective Dose"}]}
METHOD_TEXT = {RECORDED: "Effective dose as recorded in the dose report by the modality (DICOM 113814/113839)"}


def identifier_value(study_id: str, key: str) -> str:
    return f"{study_id}/{key}"


def resource_id(resource_type: str, value: str) -> str:
    """The id DACS gives a new evaluation resource: a UUID derived from its identifier (so it is stable)."""
    return str(uuid.uuid5(_NAMESPACE, f"{resource_type}|{EVALUATION_SYSTEM}|{value}"))


def quantity(q: Quantity, unit: str | None = None, digits: int = 6) -> dict[str, Any]:
    """A FHIR Quantity (UCUM), optionally converted to ``unit``."""
    value = q.value_in(unit) if unit else q.value
    code = unit or q.unit
    return {"value": round(value, digits), "unit": code, "system": UCUM, "code": code}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _component(system: str, code: str, display: str | None = None, **value: Any) -> dict[str, Any]:
    return {"code": {"coding": [_coding(system, code, display)]}, **value}


def _refs(resource_type: str, ids: Iterable[str | None]) -> list[dict[str, str]]:
    return [{"reference": f"{resource_type}/{i}"} for i in dict.fromkeys(i for i in ids if i)]


def _head(exam: ExamDose, key: str, code: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": EVALUATION_SYSTEM, "value": identifier_value(exam.study_id, key)}],
        "status": "final",
        "category": CATEGORY,
        "code": code,
    }
    if exam.patient_id:
        res["subject"] = {"reference": f"Patient/{exam.patient_id}"}
    res["partOf"] = [{"reference": f"ImagingStudy/{exam.study_id}"}]
    if exam.date:
        res["effectiveDateTime"] = exam.date
    res["performer"] = [AUTHOR]
    return res


def _method(calc: Calculation | None, method: str) -> dict[str, Any]:
    if calc is not None:
        return {"coding": [calc.method_coding]}
    return {"coding": [_coding(dacs_system("calculation-method"), method)], "text": METHOD_TEXT.get(method, method)}


def _coefficient_components(calc: Calculation | None) -> list[dict[str, Any]]:
    if calc is None:
        return []
    return [{"code": {"coding": [_coding(COMPONENT_SYSTEM, "coefficient", "Coefficient")], "text": c.name},
             "valueQuantity": {"value": c.value, "unit": c.unit, "system": UCUM, "code": c.unit}}
            for c in calc.coefficients]


def _notes(texts: Iterable[str]) -> list[dict[str, str]]:
    return [{"text": t} for t in dict.fromkeys(texts) if t]


def effective_dose_record(ev: ExamEvaluation, ref: ReferenceData) -> dict[str, Any]:
    """The ``effective-dose`` Observation: the exam's evaluation record (see the module docstring)."""
    exam, mapping, outcome = ev.exam, ev.mapping, ev.effective_dose
    res = _head(exam, "effective-dose", {**EFFECTIVE_DOSE_CODE, "text": "Estimated effective dose of the examination"})
    calc = outcome.calculation if outcome else None
    if outcome is not None:
        res["valueQuantity"] = quantity(Quantity(outcome.value_msv, "mSv"))
        res["method"] = _method(calc, outcome.method)
    else:
        why = "; ".join(n for n in ev.notes if n.startswith("effective dose")) or "no method applies to this exam"
        res["dataAbsentReason"] = {"coding": [_coding(DATA_ABSENT, "unknown", "Unknown")], "text": why}
    res["derivedFrom"] = _refs("Observation", exam.summary_ids or [e.observation_id for e in exam.events])
    comps: list[dict[str, Any]] = []
    if mapping.standard_procedure is not None:
        proc = mapping.standard_procedure
        comps.append(_component(COMPONENT_SYSTEM, "standard-procedure", "Standard procedure", valueCodeableConcept={
            "coding": [_coding(dacs_system("standard-procedure"), proc.code, proc.display)]}))
    else:
        comps.append(_component(COMPONENT_SYSTEM, "standard-procedure", "Standard procedure", dataAbsentReason={
            "coding": [_coding(DATA_ABSENT, "unknown", "Unknown")], "text": mapping.reason or "unmapped"}))
    if mapping.body_region is not None:
        comps.append(_component(COMPONENT_SYSTEM, "body-region", "Body region", valueCodeableConcept={
            "coding": [_coding(dacs_system("body-region"), mapping.body_region.id, mapping.body_region.display)]}))
    if exam.modality:
        comps.append(_component(COMPONENT_SYSTEM, "modality", "Modality",
                                valueCodeableConcept={"coding": [_coding(DCM, exam.modality)]}))
    if exam.description:
        comps.append(_component(COMPONENT_SYSTEM, "study-description", "Study description",
                                valueString=exam.description))
    if ev.age_years is not None:
        comps.append(_component(LOINC, "30525-0", "Age", valueQuantity=quantity(Quantity(ev.age_years, "a"),
                                                                                 digits=2)))
    top = exam.max_ctdivol_event()
    for code, display, value, unit in (
        ("113813", "CT Dose Length Product Total", exam.dlp_total, "mGy.cm"),
        ("113830", "Mean CTDIvol (highest acquisition)", top.ctdivol if top else None, "mGy"),
        ("113722", "Dose Area Product Total", exam.dap_total, "Gy.cm2"),
        ("113725", "Dose (RP) Total", exam.dose_rp_total, "mGy"),
        ("111637", "Accumulated Average Glandular Dose", exam.agd, "mGy"),
    ):
        if value is not None:
            comps.append(_component(DCM, code, display, valueQuantity=quantity(value, unit)))
    comps += _coefficient_components(calc)
    res["component"] = comps
    notes = list(calc.assumptions) if calc else []
    notes += list(ev.notes)
    if notes:
        res["note"] = _notes(notes)
    return res


def _range_component(code: str, text: str, value: Quantity, level: Quantity, range_text: str,
                     exceeded: bool) -> dict[str, Any]:
    return {
        "code": {"coding": [_coding(dacs_system("dose-quantity"), code)], "text": text},
        "valueQuantity": quantity(value),
        "referenceRange": [{"high": quantity(level, value.unit), "text": range_text}],
        "interpretation": [{"coding": [_coding(INTERPRETATION, "H" if exceeded else "N",
                                               "High" if exceeded else "Normal")]}],
    }


def _comparison_record(ev: ExamEvaluation, key: str, method_display: str, text: str,
                       evidence: Iterable[str | None], components: list[dict[str, Any]]) -> dict[str, Any]:
    method = {"coding": [_coding(dacs_system("calculation-method"), key, method_display)]}
    res = _head(ev.exam, key, {**method, "text": text})
    res["method"] = method
    res["derivedFrom"] = _refs("Observation", evidence)
    res["component"] = components
    return res


def drl_record(ev: ExamEvaluation, results: Sequence[DrlResult]) -> dict[str, Any]:
    """The ``drl-comparison`` Observation: one component per (quantity, DRL set)."""
    comps = []
    for r in results:
        c = r.comparison
        level = Quantity(c.drl.value_in(c.value.unit) * c.factor, c.value.unit)
        role = "alerting set" if r.primary else "comparison"
        comps.append(_range_component(
            c.quantity, f"{c.quantity} vs DRL {c.drl_set} ({c.drl_label}; {role})", c.value, level,
            f"DRL {c.drl_set}: {source_text(c.coefficients[0].source)}", c.exceeded))
    res = _comparison_record(ev, "drl-comparison", "Comparison with a diagnostic reference level",
                             "Comparison with diagnostic reference levels", (r.evidence_id for r in results), comps)
    notes = [a for r in results for a in r.comparison.assumptions]
    if notes:
        res["note"] = _notes(notes)
    return res


def threshold_record(ev: ExamEvaluation, checks: Sequence[Checked]) -> dict[str, Any]:
    """The ``threshold-comparison`` Observation: one component per threshold checked."""
    comps = [
        _range_component(c.check.quantity, f"{c.check.quantity} vs {c.check.level} {c.check.threshold_ref} "
                         f"({c.label})", c.check.value, c.check.threshold,
                         f"{c.check.threshold_ref}: {source_text(c.check.coefficients[0].source)}", c.check.exceeded)
        for c in checks
    ]
    return _comparison_record(ev, "threshold-comparison", "Comparison with a dose threshold",
                              "Comparison with dose thresholds", (c.evidence_id for c in checks), comps)


def ssde_record(ev: ExamEvaluation, item: SsdeResult) -> dict[str, Any]:
    r = item.result
    res = _head(ev.exam, f"ssde/{item.event_id}", {"coding": [_coding(DCM, "113930", "Size Specific Dose Estimate")]})
    res["valueQuantity"] = quantity(r.quantity)
    res["method"] = {"coding": [r.method_coding] + ([r.dicom_method.to_fhir()] if r.dicom_method else [])}
    res["derivedFrom"] = _refs("Observation", [item.event_id])
    diameter_code = ("113980", "Water Equivalent Diameter") if r.diameter_kind == "water-equivalent" else (
        "113933", "Derived Effective Diameter")
    ctdi = next((i for i in r.inputs if i.name == "CTDIvol"), None)
    comps = []
    if ctdi is not None and isinstance(ctdi.value, float | int) and ctdi.unit:
        comps.append(_component(DCM, "113830", "Mean CTDIvol", valueQuantity=quantity(Quantity(ctdi.value, ctdi.unit))))
    comps.append(_component(DCM, *diameter_code, valueQuantity=quantity(Quantity(r.diameter_cm, "cm"))))
    comps.append(_component(DCM, "113835", "CTDIw Phantom Type", valueString=r.phantom))
    comps += _coefficient_components(r)
    res["component"] = comps
    if r.assumptions:
        res["note"] = _notes(r.assumptions)
    return res


def cumulative_record(ev: ExamEvaluation, cumulative: CumulativeDose, record_ids: dict[str, str]) -> dict[str, Any]:
    """The ``cumulative-effective-dose`` Observation (``record_ids``: study id → its effective-dose record)."""
    res = _head(ev.exam, "cumulative-effective-dose", {
        "coding": [_coding(dacs_system("dose-quantity"), "effective", "Effective dose")],
        "text": f"Cumulative effective dose over {cumulative.window_days:g} days up to this examination"})
    res.pop("effectiveDateTime", None)
    res["effectivePeriod"] = {"start": cumulative.start.isoformat().replace("+00:00", "Z"),
                              "end": cumulative.end.isoformat().replace("+00:00", "Z")}
    res["valueQuantity"] = quantity(Quantity(cumulative.value_msv, "mSv"))
    res["method"] = {"text": "Sum of the per-examination effective doses DACS holds for the patient in the window"}
    res["derivedFrom"] = _refs("Observation", (rid or record_ids.get(sid) for sid, rid, _ in cumulative.exams))
    if cumulative.threshold_msv is not None:
        res["referenceRange"] = [{"high": quantity(Quantity(cumulative.threshold_msv, "mSv")),
                                  "text": f"evaluation policy: {cumulative.source}"}]
        res["interpretation"] = [{"coding": [_coding(INTERPRETATION, "H" if cumulative.exceeded else "N")]}]
    res["component"] = [
        _component(COMPONENT_SYSTEM, "exam-count", "Examinations in the window", valueInteger=len(cumulative.exams)),
        _component(COMPONENT_SYSTEM, "window", "Window", valueQuantity=quantity(Quantity(cumulative.window_days, "d"))),
    ]
    return res


def detected_issue(ev: ExamEvaluation, finding: Finding, record_ids: dict[str, str],
                   identified: str | None) -> dict[str, Any]:
    """A DetectedIssue for one finding (``record_ids``: evaluation key → Observation id)."""
    exam = ev.exam
    evidence = list(finding.evidence)
    if finding.record and finding.record in record_ids:
        evidence.append(record_ids[finding.record])
    res: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "identifier": [{"system": EVALUATION_SYSTEM, "value": identifier_value(exam.study_id, finding.key)}],
        "status": "final",
        "code": {"coding": [_coding(dacs_system("dose-finding"), finding.code)],
                 "text": f"{finding.code}: {finding.threshold}"},
        "severity": finding.severity,
    }
    if exam.patient_id:
        res["patient"] = {"reference": f"Patient/{exam.patient_id}"}
    if identified:
        res["identifiedDateTime"] = identified
    res["author"] = AUTHOR
    res["implicated"] = _refs("ImagingStudy", (exam.study_id, *finding.implicated))
    res["evidence"] = [{"detail": _refs("Observation", evidence)}]
    res["detail"] = finding.text
    if finding.reference_url:
        res["reference"] = finding.reference_url
    return res


def provenance(ev: ExamEvaluation, targets: Sequence[str], recorded: str, ref: ReferenceData,
               patient_used: bool) -> dict[str, Any]:
    """One Provenance for the exam's evaluation: targets, the input Observations, and every data set used."""
    exam = ev.exam
    calcs: list[Calculation] = []
    if ev.effective_dose and ev.effective_dose.calculation:
        calcs.append(ev.effective_dose.calculation)
    calcs += [s.result for s in ev.ssde] + [d.comparison for d in ev.drl] + [c.check for c in ev.thresholds]
    entities: list[dict[str, Any]] = [{"role": "source", "what": r} for r in _refs("Observation",
                                                                                     exam.dose_observation_ids)]
    if patient_used and exam.patient_id:
        entities.append({"role": "source", "what": {"reference": f"Patient/{exam.patient_id}",
                                                    "display": "birth date (age at the examination)"}})
    seen: set[tuple[str, str]] = set()
    for calc in calcs:
        for coef in calc.coefficients:
            key = (coef.set_id, source_text(coef.source))
            if key in seen:
                continue
            seen.add(key)
            entities.append({"role": "source", "what": {
                "identifier": {"system": REFERENCE_DATA_SYSTEM, "value": coef.set_id},
                "display": f"{source_text(coef.source)} [evidence {coef.source.evidence or '?'}, "
                           f"{coef.source.origin} data]"}})
    entities.append({"role": "source", "what": {
        "identifier": {"system": REFERENCE_DATA_SYSTEM, "value": "evaluation-policy"},
        "display": "DACS evaluation policy " + ", ".join(
            f"{name} {version}" for name, version in ref.file_versions.items()
            if name.endswith("evaluation_policy.json") or name.startswith("site:"))}})
    return {
        "resourceType": "Provenance",
        "target": [{"reference": t} for t in targets],
        "recorded": recorded,
        "activity": {"text": "DACS dose evaluation (effective dose, SSDE, DRL and threshold comparison)"},
        "agent": [{"type": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                                "assembler", "Assembler")]}, "who": AUTHOR}],
        "entity": entities,
    }
