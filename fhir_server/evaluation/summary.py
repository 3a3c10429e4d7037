"""``Patient/$dose-summary``: a patient's examinations, totals and open alerts over a period.

Built for speed on long histories: index searches for the patient's ImagingStudies, their evaluation
records and the patient's open DetectedIssues (plus the dose summaries of studies not evaluated yet),
each result read once from its stored JSON (no model validation); one code per search, which the
stores answer from the index. Per exam, the effective dose is the evaluation record's (method as
recorded there); an exam not evaluated yet falls back to the effective dose its report recorded
(DICOM 113814), else it counts as "without effective dose" and the method says so.

Units of the totals: effective dose mSv, DLP mGy.cm, DAP Gy.cm2, CTDIvol and Ka,r mGy.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_server.errors import FhirError, NotFound
from fhir_server.evaluation import resources as fhir
from fhir_server.evaluation.evaluator import OPEN_STATUSES, SEARCH_LIMIT
from fhir_server.evaluation.records import (
    codings,
    dcm_components,
    preferred_summaries,
    quantity_of,
    reference_id,
    study_modality,
)
from fhir_server.evaluation.rules import RECORDED, parse_when
from fhir_server.search.request import parse_search
from fhir_server.search.values import BadValue, date_range
from fhir_server.service import FhirService
from fhir_server.storage.base import StoredResource
from terminology.codes import DCM, LOINC, UCUM
from terminology.errors import TerminologyError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# (parameter name, ExamRow attribute, unit) of the per-modality totals
_TOTALS = (("effective-dose", "effective", "mSv"), ("dlp", "dlp", "mGy.cm"), ("dap", "dap", "Gy.cm2"),
           ("ka-r", "ka_r", "mGy"))
# Up to this many unevaluated studies are looked up one by one; more: one search of all summaries.
_PER_STUDY_LOOKUPS = 20
# (ExamRow attribute, DICOM code in the IG dose summary, unit of the summary)
_SUMMARY_VALUES = (("dlp", "113813", "mGy.cm"), ("dap", "113722", "Gy.cm2"), ("ka_r", "113725", "mGy"))


@dataclass
class ExamRow:
    """One examination of the summary (values in :data:`UNITS`)."""

    study_id: str
    date: str | None
    modality: str | None
    description: str | None
    standard_procedure: dict[str, str] | None = None
    dlp: float | None = None
    dap: float | None = None
    ctdivol: float | None = None
    ka_r: float | None = None
    effective: float | None = None
    method: str | None = None


def _in_unit(value: Mapping[str, Any] | None, unit: str) -> float | None:
    """A FHIR Quantity's value in ``unit`` (fast path when it is stored in that unit already)."""
    if not value:
        return None
    number = value.get("value")
    if value.get("code") == unit and isinstance(number, int | float):
        return float(number)
    q = quantity_of(value)
    if q is None:
        return None
    try:
        return q.value_in(unit)
    except TerminologyError:
        return None


def _value(comps: Mapping[str, list[dict[str, Any]]], code: str, unit: str) -> float | None:
    total = None
    for comp in comps.get(code, ()):
        v = _in_unit(comp.get("valueQuantity"), unit)
        if v is not None:
            total = (total or 0.0) + v
    return total


def _method_label(method: Mapping[str, Any] | None) -> str | None:
    if not method:
        return None
    coded = next((c.code for c in codings(method)), None)
    return coded or method.get("text")


def _bounds(start: str | None, end: str | None) -> tuple[float | None, float | None]:
    """Milliseconds since the epoch: the start of ``start`` and the end of ``end`` (both inclusive)."""
    try:
        lo = date_range(start)[0] if start else None
        hi = date_range(end)[1] if end else None
    except BadValue as exc:
        raise FhirError(f"invalid period bound: {exc}") from None
    return lo, hi


def _in_period(when: str | None, lo: float | None, hi: float | None) -> bool:
    if lo is None and hi is None:
        return True
    moment = parse_when(when)
    if moment is None:
        return False
    ms = moment.timestamp() * 1000
    return (lo is None or ms >= lo) and (hi is None or ms <= hi)


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": round(value, 4), "unit": unit, "system": UCUM, "code": unit}


def _stored(service: FhirService, type_: str, query: list[tuple[str, str]]) -> list[StoredResource]:
    request = parse_search(type_, query)
    return service.store.search(type_, service.plan(request), (), count=SEARCH_LIMIT, offset=0,
                                total=False).resources


def _search(service: FhirService, type_: str, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in _stored(service, type_, query) if r.body is not None]


def collect_rows(service: FhirService, patient_id: str, start: str | None = None,
                 end: str | None = None) -> list[ExamRow]:
    """The patient's examinations in the period, oldest first."""
    lo, hi = _bounds(start, end)
    subject = f"Patient/{patient_id}"
    studies = {r.id: r for r in _stored(service, "ImagingStudy", [("subject", subject)])}
    record_ids = {fhir.resource_id("Observation", fhir.identifier_value(s, "effective-dose")): s for s in studies}
    rows: dict[str, ExamRow] = {}
    records: dict[str, dict[str, Any]] = {}
    for stored in service.store.read_many("Observation", list(record_ids)):
        obs = orjson.loads(stored.body or b"{}")
        study_id = record_ids[stored.id]
        if obs.get("status") != "entered-in-error" and _study_of(obs) == study_id:
            records[study_id] = obs
    for study_id, stored_study in studies.items():
        record = records.get(study_id)
        if record is not None:  # the evaluation record repeats what the summary needs of the study
            rows[study_id] = ExamRow(study_id, record.get("effectiveDateTime"), None, None)
            continue
        study = orjson.loads(stored_study.body or b"{}")
        if study.get("status") != "entered-in-error":
            rows[study_id] = ExamRow(study_id, study.get("started"), study_modality(study), study.get("description"))
    summaries: dict[str, list[dict[str, Any]]] = {}
    missing = [s for s in rows if s not in records]
    if missing:  # studies not evaluated (yet): read their dose summaries
        if len(missing) <= _PER_STUDY_LOOKUPS:
            found = [o for s in missing for o in _search(service, "Observation", [
                ("part-of", f"ImagingStudy/{s}"), ("code", f"{LOINC}|73569-6")])]
        else:
            found = _search(service, "Observation", [("subject", subject), ("code", f"{LOINC}|73569-6")])
        for obs in found:
            of = _study_of(obs)
            if of is not None and of in rows and of not in records and obs.get("status") != "entered-in-error":
                summaries.setdefault(of, []).append(obs)
    recorded: dict[str, float] = {}
    for study_id, row in rows.items():
        record = records.get(study_id)
        if record is not None:
            _from_record(row, record)
            continue
        for summary in preferred_summaries(summaries.get(study_id, ())):
            comps = dcm_components(summary)
            for attr, code, unit in _SUMMARY_VALUES:
                value = _value(comps, code, unit)
                if value is not None:
                    setattr(row, attr, (getattr(row, attr) or 0.0) + value)
            e = _value(comps, "113814", "mSv")
            if e is not None:
                recorded[study_id] = recorded.get(study_id, 0.0) + e
            if row.date is None:
                row.date = summary.get("effectiveDateTime")
        if study_id in recorded:
            row.effective, row.method = recorded[study_id], RECORDED
    out = [r for r in rows.values() if _in_period(r.date, lo, hi)]
    out.sort(key=lambda r: (r.date is None, parse_when(r.date) or _EPOCH, r.study_id))
    return out


def _study_of(observation: Mapping[str, Any]) -> str | None:
    return next((s for p in observation.get("partOf") or () if (s := reference_id(p, "ImagingStudy"))), None)


_RECORD_VALUES = {"113813": ("dlp", "mGy.cm"), "113830": ("ctdivol", "mGy"), "113722": ("dap", "Gy.cm2"),
                  "113725": ("ka_r", "mGy")}


def _from_record(row: ExamRow, record: Mapping[str, Any]) -> None:
    """Fill a row from the exam's evaluation record (the values are stored in the units of the row)."""
    for comp in record.get("component") or ():
        first: dict[str, Any] = ((comp.get("code") or {}).get("coding") or [{}])[0]
        system, code = first.get("system"), first.get("code")
        if system == DCM and code in _RECORD_VALUES:
            attr, unit = _RECORD_VALUES[code]
            setattr(row, attr, _in_unit(comp.get("valueQuantity"), unit))
        elif system == fhir.COMPONENT_SYSTEM:
            value: list[dict[str, Any]] = (comp.get("valueCodeableConcept") or {}).get("coding") or [{}]
            if code == "standard-procedure":
                row.standard_procedure = value[0] or None
            elif code == "modality":
                row.modality = value[0].get("code")
            elif code == "study-description":
                row.description = comp.get("valueString")
    e = _in_unit(record.get("valueQuantity"), "mSv")
    if e is not None:
        row.effective = e
        row.method = _method_label(record.get("method"))
    if row.date is None:
        row.date = record.get("effectiveDateTime")


def open_alerts(service: FhirService, patient_id: str) -> list[dict[str, Any]]:
    """The patient's DetectedIssues with status preliminary or final (and amended/corrected)."""
    return _search(service, "DetectedIssue", [("patient", f"Patient/{patient_id}"),
                                               ("status", ",".join(OPEN_STATUSES))])


def _part(name: str, **value: Any) -> dict[str, Any]:
    return {"name": name, **value}


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one summary.

    A long history allocates tens of thousands of short-lived dicts; in a server process whose heap holds
    the FHIR model classes, a collection triggered in the middle costs more than the summary itself (about
    half of its time at 500 exams). Reference counting still frees everything; collection resumes after.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def dose_summary(service: FhirService, patient_id: str, start: str | None = None,
                 end: str | None = None) -> dict[str, Any]:
    """The ``$dose-summary`` Parameters for ``Patient/<patient_id>`` over ``[start, end]``.

    Raises
    ------
    NotFound
        If the patient is not stored.
    """
    with _collection_paused():
        return _dose_summary(service, patient_id, start, end)


def _dose_summary(service: FhirService, patient_id: str, start: str | None, end: str | None) -> dict[str, Any]:
    stored = service.store.read("Patient", patient_id)
    if stored is None or stored.deleted:
        raise NotFound(f"Patient/{patient_id} is not known")
    rows = collect_rows(service, patient_id, start, end)
    alerts = open_alerts(service, patient_id)
    total = sum(r.effective for r in rows if r.effective is not None)
    methods = Counter(r.method for r in rows if r.effective is not None)
    missing = sum(1 for r in rows if r.effective is None)
    params: list[dict[str, Any]] = [_part("patient", valueReference={"reference": f"Patient/{patient_id}"})]
    if start:
        params.append(_part("start", valueString=start))
    if end:
        params.append(_part("end", valueString=end))
    params.append(_part("cumulative-effective-dose", valueQuantity=_quantity(total, "mSv")))
    method = "sum of per-examination effective doses"
    if methods:
        method += " (" + ", ".join(f"{m}: {n}" for m, n in sorted(methods.items(), key=lambda x: str(x[0]))) + ")"
    if missing:
        method += f"; {missing} examination(s) without an effective dose are not included"
    params.append(_part("method", valueString=method))
    params.append(_part("exam-count", valueInteger=len(rows)))
    params.append(_part("exams-without-effective-dose", valueInteger=missing))
    for modality in sorted({r.modality or "unknown" for r in rows}):
        group = [r for r in rows if (r.modality or "unknown") == modality]
        parts = [_part("modality", valueCode=modality), _part("count", valueInteger=len(group))]
        for name, attr, unit in _TOTALS:
            values = [getattr(r, attr) for r in group if getattr(r, attr) is not None]
            if values:
                parts.append(_part(name, valueQuantity=_quantity(sum(values), unit)))
        params.append(_part("modality-total", part=parts))
    for r in rows:
        params.append(_part("exam", part=_exam_parts(r)))
    params += [_part("alert", resource=a) for a in alerts]
    return {"resourceType": "Parameters", "parameter": params}


def _exam_parts(r: ExamRow) -> list[dict[str, Any]]:
    parts = [_part("study", valueReference={"reference": f"ImagingStudy/{r.study_id}"})]
    if r.date:
        parts.append(_part("date", valueDateTime=r.date))
    if r.modality:
        parts.append(_part("modality", valueCode=r.modality))
    if r.description:
        parts.append(_part("description", valueString=r.description))
    if r.standard_procedure:
        parts.append(_part("standard-procedure", valueCoding=r.standard_procedure))
    for name, value, unit in (("dlp", r.dlp, "mGy.cm"), ("ctdivol", r.ctdivol, "mGy"), ("dap", r.dap, "Gy.cm2"),
                              ("ka-r", r.ka_r, "mGy"), ("effective-dose", r.effective, "mSv")):
        if value is not None:
            parts.append(_part(name, valueQuantity=_quantity(value, unit)))
    if r.method:
        parts.append(_part("method", valueString=r.method))
    return parts


def exam_rows(parameters: Mapping[str, Any]) -> Sequence[dict[str, Any]]:
    """The ``exam`` parameters of a ``$dose-summary`` result as plain dicts (for clients and tests)."""
    out = []
    for p in parameters.get("parameter", ()):
        if p.get("name") != "exam":
            continue
        row: dict[str, Any] = {}
        for part in p.get("part", ()):
            value = next((v for k, v in part.items() if k.startswith("value")), None)
            row[part["name"]] = value
        out.append(row)
    return out

