"""``ImagingStudy/$evaluate-dose`` and ``Patient/$dose-summary`` (PRODUCT.md, "Interface contract").

Thin handlers: the work is in :mod:`fhir_server.evaluation`; here the inputs are read from the
operation request and the result is turned into a ``Parameters`` resource.
"""

from __future__ import annotations

from typing import Any

from fhir_server.errors import FhirError
from fhir_server.evaluation import DoseEvaluator, EvaluationReport, dose_summary
from fhir_server.evaluation.resources import quantity
from fhir_server.operations import Operation, OperationContext, OperationRequest, OperationResult, definition, register
from terminology.codes import dacs_system
from terminology.errors import ReferenceDataError
from terminology.ucum import Quantity


def _param(name: str, min_: int, max_: str, type_: str, doc: str, use: str = "out",
           part: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "use": use, "min": min_, "max": max_, "documentation": doc}
    if part is None:
        out["type"] = type_
    else:
        out["part"] = part
    return out


def _p(name: str, **value: Any) -> dict[str, Any]:
    return {"name": name, **value}


def evaluation_parameters(report: EvaluationReport) -> dict[str, Any]:
    """The ``$evaluate-dose`` result: the exam's standardisation, effective dose, results and findings."""
    ev = report.evaluation
    exam = ev.exam
    params: list[dict[str, Any]] = [_p("study", valueReference={"reference": f"ImagingStudy/{exam.study_id}"})]
    if exam.patient_id:
        params.append(_p("patient", valueReference={"reference": f"Patient/{exam.patient_id}"}))
    mapping = [_p("status", valueCode=ev.mapping.status)]
    if ev.mapping.standard_procedure is not None:
        proc = ev.mapping.standard_procedure
        mapping.append(_p("standard-procedure", valueCoding={
            "system": dacs_system("standard-procedure"), "code": proc.code, "display": proc.display}))
    if ev.mapping.body_region is not None:
        mapping.append(_p("body-region", valueCoding={"system": dacs_system("body-region"),
                                                       "code": ev.mapping.body_region.id}))
    if ev.mapping.matched_by:
        mapping.append(_p("matched-by", valueString=ev.mapping.matched_by))
    if ev.mapping.reason:
        mapping.append(_p("reason", valueString=ev.mapping.reason))
    params.append(_p("protocol", part=mapping))
    if ev.age_years is not None:
        params.append(_p("age", valueQuantity=quantity(Quantity(ev.age_years, "a"), digits=2)))
    record = report.records.get("effective-dose")
    if ev.effective_dose is not None:
        params.append(_p("effective-dose", part=[
            _p("value", valueQuantity=quantity(Quantity(ev.effective_dose.value_msv, "mSv"), digits=4)),
            _p("method", valueString=ev.effective_dose.method),
            *([_p("record", valueReference={"reference": f"Observation/{record}"})] if record else []),
        ]))
    if ev.cumulative is not None:
        c = ev.cumulative
        cumulative = [_p("value", valueQuantity=quantity(Quantity(c.value_msv, "mSv"), digits=4)),
                      _p("window", valueQuantity=quantity(Quantity(c.window_days, "d"))),
                      _p("exam-count", valueInteger=len(c.exams))]
        if c.threshold_msv is not None:
            cumulative.append(_p("threshold", valueQuantity=quantity(Quantity(c.threshold_msv, "mSv"))))
        params.append(_p("cumulative-effective-dose", part=cumulative))
    for key, rid in report.records.items():
        params.append(_p("result", part=[_p("key", valueString=key),
                                         _p("observation", valueReference={"reference": f"Observation/{rid}"})]))
    for issue in report.issues:
        params.append(_p("finding", part=[
            _p("code", valueCoding={"system": dacs_system("dose-finding"), "code": issue.code}),
            *([_p("severity", valueCode=issue.severity)] if issue.severity else []),
            _p("action", valueCode=issue.action),
            _p("issue", valueReference={"reference": f"DetectedIssue/{issue.id}"}),
            _p("detail", valueString=issue.detail),
        ]))
    params += [_p("note", valueString=n) for n in report.notes]
    params.append(_p("written", valueInteger=report.written))
    return {"resourceType": "Parameters", "parameter": params}


def _evaluator(ctx: OperationContext) -> DoseEvaluator:
    evaluator = ctx.extras.get("dose_evaluator")
    return evaluator if isinstance(evaluator, DoseEvaluator) else DoseEvaluator(ctx.service)


def evaluate_dose(ctx: OperationContext, request: OperationRequest) -> OperationResult:
    """``POST ImagingStudy/{id}/$evaluate-dose``."""
    assert request.id is not None
    try:
        report = _evaluator(ctx).evaluate_study(request.id)
    except ReferenceDataError as exc:
        raise FhirError(f"the site reference data cannot be used: {exc}", status=500, code="exception") from None
    return OperationResult(evaluation_parameters(report))


def _text(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FhirError(f"parameter {name!r} must be a date or dateTime")
    return value


def patient_dose_summary(ctx: OperationContext, request: OperationRequest) -> OperationResult:
    """``GET Patient/{id}/$dose-summary[?start=&end=]``."""
    assert request.id is not None
    start = _text(request.first("start"), "start")
    end = _text(request.first("end"), "end")
    queue = ctx.extras.get("evaluation_queue")
    if queue is not None:  # evaluations of just-received reports come first (read your writes)
        queue.drain(timeout=30)
    return OperationResult(dose_summary(ctx.service, request.id, start, end))


_FINDING_PARTS = [
    _param("code", 1, "1", "Coding", "DACS dose-finding code (which kind of threshold)"),
    _param("severity", 0, "1", "code", "high | moderate | low"),
    _param("action", 1, "1", "code", "created | updated | unchanged | withdrawn"),
    _param("issue", 1, "1", "Reference", "the DetectedIssue"),
    _param("detail", 1, "1", "string", "the value, the threshold and its source"),
]

register(Operation(
    code="evaluate-dose",
    handler=evaluate_dose,
    resource_types=("ImagingStudy",),
    instance=True,
    affects_state=True,
    definition=definition(
        "evaluate-dose", "EvaluateDose",
        "Evaluate the examination's dose: standardise the protocol, estimate the effective dose (DLP x k by "
        "region and age, organ doses, or the recorded value), SSDE, compare with the applicable DRLs, the "
        "scanner's dose-check values, fluoroscopy substantial-dose levels, the patient's cumulative effective "
        "dose and repeat examinations. Results are stored as Observations (with a Provenance); exceedances as "
        "DetectedIssues, updated on re-evaluation and withdrawn (entered-in-error) when they no longer hold.",
        resource=["ImagingStudy"], instance=True, affects_state=True,
        parameters=[
            _param("study", 1, "1", "Reference", "the ImagingStudy evaluated"),
            _param("patient", 0, "1", "Reference", "its patient"),
            _param("protocol", 1, "1", "", "protocol standardisation", part=[
                _param("status", 1, "1", "code", "mapped | unmapped"),
                _param("standard-procedure", 0, "1", "Coding", "DACS standard procedure"),
                _param("body-region", 0, "1", "Coding", "DACS body region"),
                _param("matched-by", 0, "1", "string", "the evidence that decided"),
                _param("reason", 0, "1", "string", "why the exam is unmapped"),
            ]),
            _param("age", 0, "1", "Quantity", "patient age at the examination (a)"),
            _param("effective-dose", 0, "1", "", "effective dose of the examination", part=[
                _param("value", 1, "1", "Quantity", "mSv"),
                _param("method", 1, "1", "string", "DACS calculation-method code"),
                _param("record", 0, "1", "Reference", "the Observation recording it"),
            ]),
            _param("cumulative-effective-dose", 0, "1", "", "the patient's effective dose over the policy window "
                   "ending at this examination", part=[
                       _param("value", 1, "1", "Quantity", "mSv"),
                       _param("window", 1, "1", "Quantity", "days"),
                       _param("exam-count", 1, "1", "integer", "examinations summed"),
                       _param("threshold", 0, "1", "Quantity", "the policy's alert level (mSv)"),
                   ]),
            _param("result", 0, "*", "", "evaluation Observations", part=[
                _param("key", 1, "1", "string", "what the Observation holds"),
                _param("observation", 1, "1", "Reference", "the Observation"),
            ]),
            _param("finding", 0, "*", "", "one per DetectedIssue created, updated, kept or withdrawn",
                   part=_FINDING_PARTS),
            _param("note", 0, "*", "string", "why a result could not be computed"),
            _param("written", 1, "1", "integer", "resources written by this evaluation"),
        ]),
))

register(Operation(
    code="dose-summary",
    handler=patient_dose_summary,
    resource_types=("Patient",),
    instance=True,
    definition=definition(
        "dose-summary", "DoseSummary",
        "A patient's radiation dose over a period: cumulative effective dose (mSv) and how it was obtained, "
        "totals per modality, the number of examinations, one row per examination and the open alerts.",
        resource=["Patient"], instance=True,
        parameters=[
            _param("start", 0, "1", "date", "first day of the period (inclusive)", use="in"),
            _param("end", 0, "1", "date", "last day of the period (inclusive)", use="in"),
            _param("patient", 1, "1", "Reference", "the patient"),
            _param("cumulative-effective-dose", 1, "1", "Quantity", "sum of the exams' effective doses (mSv)"),
            _param("method", 1, "1", "string", "how the effective doses were obtained, and what is left out"),
            _param("exam-count", 1, "1", "integer", "examinations in the period"),
            _param("exams-without-effective-dose", 1, "1", "integer", "examinations not in the sum"),
            _param("modality-total", 0, "*", "", "totals per modality", part=[
                _param("modality", 1, "1", "code", "DICOM modality"),
                _param("count", 1, "1", "integer", "examinations"),
                _param("effective-dose", 0, "1", "Quantity", "mSv"),
                _param("dlp", 0, "1", "Quantity", "CT DLP sum (mGy.cm)"),
                _param("dap", 0, "1", "Quantity", "DAP sum (Gy.cm2)"),
                _param("ka-r", 0, "1", "Quantity", "reference air kerma sum (mGy)"),
            ]),
            _param("exam", 0, "*", "", "one per examination, oldest first", part=[
                _param("study", 1, "1", "Reference", "ImagingStudy"),
                _param("date", 0, "1", "dateTime", "examination date"),
                _param("modality", 0, "1", "code", "DICOM modality"),
                _param("description", 0, "1", "string", "study description"),
                _param("standard-procedure", 0, "1", "Coding", "DACS standard procedure"),
                _param("dlp", 0, "1", "Quantity", "mGy.cm"),
                _param("ctdivol", 0, "1", "Quantity", "highest CTDIvol of the acquisitions (mGy)"),
                _param("dap", 0, "1", "Quantity", "Gy.cm2"),
                _param("ka-r", 0, "1", "Quantity", "mGy"),
                _param("effective-dose", 0, "1", "Quantity", "mSv"),
                _param("method", 0, "1", "string", "how the effective dose was obtained"),
            ]),
            _param("alert", 0, "*", "DetectedIssue", "open alerts (status preliminary or final)"),
        ]),
))
