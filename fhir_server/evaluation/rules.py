"""The evaluation rules for one examination: pure functions from typed records to results and findings.

Every number comes from ``terminology`` (k-factors, DRLs, thresholds, weights, SSDE fits) through the
site's :class:`~terminology.reference.ReferenceData`; this module only decides *which* calculation and
comparison applies to an exam and turns exceedances into :class:`Finding` records. No I/O: the
evaluator (:mod:`fhir_server.evaluation.evaluator`) reads the inputs and writes the results.

DACS choices made here (not published values):

* effective dose: organ doses when the report has them (E = Σ w_T · w_R · D_T), else DLP × k for CT,
  else a site's DAP coefficient for projection exams, else the value the modality recorded;
* CTDIvol is compared per sequence (the DRL sets give it per sequence), as the highest non-localizer
  acquisition of the exam;
* repeat examination: same standard procedure for the same patient within ``period_days`` (default 1
  day, evaluation-policy key ``repeat_examination``);
* severities (:data:`SEVERITY`): a DRL prompts review (moderate), a scanner notification value is low,
  an alert value or the cumulative effective dose is moderate, a substantial-dose or sentinel level
  that calls for patient follow-up is high.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhir_server.evaluation.records import EventDose, ExamDose
from terminology.drl import DrlComparison, compare_with_drl
from terminology.effective_dose import (
    EffectiveDose,
    effective_dose_from_dap,
    effective_dose_from_dlp,
    effective_dose_from_organ_doses,
)
from terminology.errors import TerminologyError
from terminology.protocols import ExamDescriptor, ProtocolMapping, standardise_exam
from terminology.reference import ReferenceData, Source
from terminology.ssde import Ssde, effective_diameter, ssde
from terminology.thresholds import (
    ThresholdCheck,
    evaluate_ct_dose_check,
    evaluate_fluoroscopy,
    evaluate_recorded_dose_check,
)
from terminology.ucum import Quantity

RECORDED = "recorded-in-dose-report"
"""Method of an effective dose DACS did not compute but copied from the report (DICOM 113814/113839)."""

DEFAULT_REPEAT_PERIOD_DAYS = 1.0
FLUORO_MODALITIES = frozenset({"XA", "RF"})

SEVERITY = {
    "drl-exceeded": "moderate",
    "ct-notification-value-exceeded": "low",
    "ct-alert-value-exceeded": "moderate",
    "ct-dose-limit-exceeded": "high",
    "fluoro-substantial-dose": "high",
    "fluoro-threshold-exceeded": "moderate",
    "cumulative-effective-dose-exceeded": "moderate",
    "repeat-examination": "low",
}
_LEVEL_SEVERITY = {"follow-up": "high", "sentinel": "high", "alert": "moderate", "notification": "low"}


def slug(text: str) -> str:
    """A token-safe identifier part (``"Ka,r"`` → ``"Ka-r"``): no ``,``, ``|``, ``$`` or spaces."""
    return re.sub(r"[^A-Za-z0-9.\-]+", "-", text).strip("-") or "x"


def parse_when(value: str | None) -> datetime | None:
    """A FHIR date/dateTime/instant as an aware UTC datetime (partial dates at their start)."""
    if not value:
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1, tzinfo=UTC)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def source_text(source: Source) -> str:
    """``citation, table (edition)`` for a DetectedIssue or Provenance."""
    parts = [source.citation]
    if source.table:
        parts.append(source.table)
    text = ", ".join(parts)
    return f"{text} ({source.edition})" if source.edition else text


@dataclass(frozen=True)
class PriorExam:
    """Another examination of the same patient, as its stored effective-dose record describes it."""

    study_id: str
    when: datetime
    record_id: str  # its effective-dose Observation
    standard_procedure: str | None
    modality: str | None
    effective_dose_msv: float | None
    ka_r_mgy: float | None = None
    dap_gycm2: float | None = None


@dataclass(frozen=True)
class EffectiveDoseOutcome:
    """The exam's effective dose in mSv: a DACS calculation, or the value the report recorded."""

    value_msv: float
    method: str
    calculation: EffectiveDose | None = None


@dataclass(frozen=True)
class Checked:
    """A threshold check with the Observation holding the value checked."""

    check: ThresholdCheck
    evidence_id: str | None
    label: str  # e.g. "recorded by the scanner" or "site CT dose check"


@dataclass(frozen=True)
class DrlResult:
    comparison: DrlComparison
    evidence_id: str | None
    primary: bool


@dataclass(frozen=True)
class SsdeResult:
    event_id: str
    result: Ssde


@dataclass(frozen=True)
class CumulativeDose:
    """The patient's effective dose summed over the window ending at this exam."""

    value_msv: float
    window_days: float
    start: datetime
    end: datetime
    exams: tuple[tuple[str, str | None, float], ...]  # (study id, its effective-dose record id, mSv)
    threshold_msv: float | None
    source: str
    exceeded: bool


@dataclass(frozen=True)
class Finding:
    """An exceedance that becomes (or keeps) a DetectedIssue.

    ``key`` is unique within the study (the DetectedIssue identifier is ``<study id>/<key>``);
    ``record`` names the evaluation Observation that holds the comparison (``drl-comparison``…).
    """

    key: str
    code: str
    severity: str
    text: str
    threshold: str
    evidence: tuple[str, ...]
    record: str | None
    implicated: tuple[str, ...] = ()
    reference_url: str | None = None


@dataclass(frozen=True)
class ExamEvaluation:
    """Everything evaluation computed for one examination (pure result, nothing stored yet)."""

    exam: ExamDose
    mapping: ProtocolMapping
    age_years: float | None
    effective_dose: EffectiveDoseOutcome | None
    ssde: tuple[SsdeResult, ...]
    drl: tuple[DrlResult, ...]
    thresholds: tuple[Checked, ...]
    cumulative: CumulativeDose | None
    repeats: tuple[PriorExam, ...]
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = field(default=())


def exam_descriptor(exam: ExamDose) -> ExamDescriptor:
    """What protocol standardisation needs: modality, description, protocol names, codes, target regions."""
    return ExamDescriptor(
        modality=exam.modality,
        study_description=exam.description,
        descriptions=exam.protocols,
        procedure_codes=exam.procedure_codes,
        target_regions=exam.target_regions,
    )


def _attempt(notes: list[str], what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one calculation; a terminology error becomes a note saying why the result is missing."""
    try:
        return fn(*args, **kwargs)
    except TerminologyError as exc:
        notes.append(f"{what}: {exc}")
        return None


def evaluate_effective_dose(exam: ExamDose, mapping: ProtocolMapping, age: float | None,
                            ref: ReferenceData, notes: list[str]) -> EffectiveDoseOutcome | None:
    """Organ doses, else DLP × k (CT), else DAP × c (projection), else the recorded value."""
    calc: EffectiveDose | None = None
    if exam.organ_doses:
        calc = _attempt(notes, "effective dose from organ doses", effective_dose_from_organ_doses,
                        dict(exam.organ_doses), reference=ref)
    elif exam.modality == "CT" and exam.dlp_total is not None:
        region = mapping.body_region
        if region is None:
            why = mapping.reason or f"{mapping.code} has no single body region"
            notes.append(f"effective dose from DLP: no body region ({why})")
        else:
            calc = _attempt(notes, "effective dose from DLP", effective_dose_from_dlp, exam.dlp_total, region.id,
                            age, reference=ref)
    elif exam.dap_total is not None and mapping.code is not None:
        calc = _attempt(notes, "effective dose from DAP", effective_dose_from_dap, exam.dap_total, mapping.code,
                        age, reference=ref)
    if calc is not None:
        return EffectiveDoseOutcome(calc.value, calc.method, calc)
    if exam.recorded_effective_dose is not None:
        try:
            value = exam.recorded_effective_dose.value_in("mSv")
        except TerminologyError as exc:
            notes.append(f"recorded effective dose: {exc}")
            return None
        return EffectiveDoseOutcome(value, RECORDED)
    return None


def evaluate_ssde(exam: ExamDose, ref: ReferenceData, notes: list[str]) -> tuple[SsdeResult, ...]:
    """SSDE for each CT acquisition whose report gives a patient diameter and a CTDI phantom."""
    out = []
    for event in exam.events:
        if event.ctdivol is None or event.localizer:
            continue
        diameter: Quantity | None
        if event.water_equivalent_diameter is not None:
            diameter, kind = event.water_equivalent_diameter, "water-equivalent"
        elif event.effective_diameter is not None:
            diameter, kind = event.effective_diameter, "effective"
        elif event.ap_dimension is not None and event.lateral_dimension is not None:
            diameter = _attempt(notes, "effective diameter", effective_diameter, event.ap_dimension,
                                event.lateral_dimension)
            kind = "effective"
        else:
            continue
        if diameter is None:
            continue
        if event.phantom is None:
            notes.append(f"SSDE of event {event.observation_id}: the CTDIvol phantom is not recorded")
            continue
        result = _attempt(notes, f"SSDE of event {event.observation_id}", ssde, event.ctdivol, diameter,
                          event.phantom, diameter_kind=kind, reference=ref)
        if result is not None:
            out.append(SsdeResult(event.observation_id, result))
    return tuple(out)


def _drl_candidates(exam: ExamDose) -> list[tuple[str, Quantity, str | None]]:
    out: list[tuple[str, Quantity, str | None]] = []
    if exam.dlp_total is not None:
        out.append(("DLP", exam.dlp_total, exam.evidence_id))
    top = exam.max_ctdivol_event()
    if top is not None and top.ctdivol is not None:
        out.append(("CTDIvol", top.ctdivol, top.observation_id))
    if exam.dap_total is not None:
        out.append(("DAP", exam.dap_total, exam.evidence_id))
    if exam.dose_rp_total is not None:
        out.append(("Ka,r", exam.dose_rp_total, exam.evidence_id))
    if exam.agd is not None:
        out.append(("AGD", exam.agd, exam.evidence_id))
    return out


def evaluate_drls(exam: ExamDose, mapping: ProtocolMapping, age: float | None, ref: ReferenceData,
                  notes: list[str]) -> tuple[DrlResult, ...]:
    """Every applicable DRL for every dose quantity the exam has (the first set in priority alerts)."""
    if mapping.code is None:
        return ()
    out: list[DrlResult] = []
    for quantity, value, evidence in _drl_candidates(exam):
        evaluation = _attempt(notes, f"DRL comparison of {quantity}", compare_with_drl, value, mapping.code,
                              quantity, age_years=age, modality=exam.modality, reference=ref)
        if evaluation is None:
            continue
        if not evaluation.comparisons:
            if quantity in ("DLP", "CTDIvol") and evaluation.reason:
                notes.append(evaluation.reason)
            continue
        out += [DrlResult(c, evidence, i == 0) for i, c in enumerate(evaluation.comparisons)]
    return tuple(out)


def _recorded_checks(event: EventDose, exam: ExamDose) -> list[Checked]:
    """TID 10015 values against the estimates the scanner compared them with (else the event's own)."""
    dc = event.dose_check
    if not dc.any:
        return []
    out = []
    notification = evaluate_recorded_dose_check(
        ctdivol=dc.ctdivol_forward_estimate or event.ctdivol, dlp=dc.dlp_forward_estimate or event.dlp,
        ctdivol_notification=dc.ctdivol_notification, dlp_notification=dc.dlp_notification)
    alert = evaluate_recorded_dose_check(
        ctdivol=dc.accumulated_ctdivol_forward_estimate or event.ctdivol,
        dlp=dc.accumulated_dlp_forward_estimate or exam.dlp_total,
        ctdivol_alert=dc.ctdivol_alert, dlp_alert=dc.dlp_alert)
    for check in (*notification, *alert):
        out.append(Checked(check, event.observation_id, "recorded by the scanner (TID 10015)"))
    return out


def _population(age: float | None, ref: ReferenceData) -> str | None:
    if age is None:
        return "adult" if ref.policy.missing_age == "assume-adult" else None
    return "adult" if age >= ref.policy.adult_min_age_years else "paediatric"


def evaluate_threshold_rules(exam: ExamDose, mapping: ProtocolMapping, age: float | None,
                             priors: Sequence[PriorExam], when: datetime | None, ref: ReferenceData,
                             notes: list[str]) -> tuple[Checked, ...]:
    """Scanner-recorded dose-check values, site CT dose-check sets, fluoroscopy levels (per procedure
    and summed over each cumulative threshold's window)."""
    out: list[Checked] = []
    for event in exam.events:
        found = _attempt(notes, f"recorded dose check of event {event.observation_id}", _recorded_checks, event,
                         exam)
        out += found or []
    if exam.modality == "CT" and ref.policy.ct_dose_check_sets:
        region = mapping.body_region.id if mapping.body_region else None
        population = _population(age, ref)
        for event in exam.events:
            if event.localizer:
                continue
            checks = _attempt(notes, "site CT dose check", evaluate_ct_dose_check, ctdivol=event.ctdivol,
                              dlp=event.dlp, scope="series", population=population, body_region=region,
                              reference=ref) or ()
            out += [Checked(c, event.observation_id, "site CT dose check") for c in checks]
        top = exam.max_ctdivol_event()
        checks = _attempt(notes, "site CT dose check", evaluate_ct_dose_check, ctdivol=top.ctdivol if top else None,
                          dlp=exam.dlp_total, scope="examination", population=population, body_region=region,
                          reference=ref) or ()
        out += [Checked(c, exam.evidence_id, "site CT dose check") for c in checks]
    fluoro = exam.modality in FLUORO_MODALITIES
    if fluoro and (exam.dose_rp_total or exam.dap_total or exam.fluoro_time):
        checks = _attempt(notes, "fluoroscopy levels", evaluate_fluoroscopy, ka_r=exam.dose_rp_total,
                          dap=exam.dap_total, fluoro_time=exam.fluoro_time, modality=exam.modality,
                          reference=ref) or ()
        out += [Checked(c, exam.evidence_id, "fluoroscopy level") for c in checks]
        out += _cumulative_fluoro(exam, priors, when, ref, notes)
    return tuple(out)


def _cumulative_fluoro(exam: ExamDose, priors: Sequence[PriorExam], when: datetime | None, ref: ReferenceData,
                       notes: list[str]) -> list[Checked]:
    windows = sorted({t.window_days for s in ref.policy.fluoro_threshold_sets
                      for t in ref.fluoro_thresholds[s].thresholds
                      if t.scope == "cumulative" and t.window_days})
    if not windows or when is None:
        return []
    out = []
    for days in windows:
        start = when - timedelta(days=days)
        inside = [p for p in priors if p.modality in FLUORO_MODALITIES and start < p.when <= when]
        ka_r = (exam.dose_rp_total.value_in("mGy") if exam.dose_rp_total else 0.0) + sum(
            p.ka_r_mgy or 0.0 for p in inside)
        dap = (exam.dap_total.value_in("Gy.cm2") if exam.dap_total else 0.0) + sum(
            p.dap_gycm2 or 0.0 for p in inside)
        checks = _attempt(notes, f"cumulative fluoroscopy levels ({days} d)", evaluate_fluoroscopy,
                          ka_r=(ka_r, "mGy"), dap=(dap, "Gy.cm2"), modality=exam.modality, scope="cumulative",
                          reference=ref) or ()
        out += [Checked(c, exam.evidence_id, f"fluoroscopy level, {len(inside) + 1} procedures over {days} days")
                for c in checks if c.window_days == days]
    return out


def evaluate_cumulative(exam: ExamDose, effective: EffectiveDoseOutcome | None, when: datetime | None,
                        priors: Sequence[PriorExam], ref: ReferenceData) -> CumulativeDose | None:
    """The patient's effective dose over the policy window ending at this exam (this exam included)."""
    policy = ref.policy.cumulative_effective_dose
    window = float(policy.get("window_days") or 0)
    if effective is None or when is None or window <= 0:
        return None
    start = when - timedelta(days=window)
    inside = sorted((p for p in priors if p.effective_dose_msv is not None and start < p.when <= when),
                    key=lambda p: p.when)
    exams: tuple[tuple[str, str | None, float], ...] = tuple(
        (p.study_id, p.record_id, float(p.effective_dose_msv or 0.0)) for p in inside)
    exams += ((exam.study_id, None, effective.value_msv),)
    total = sum(v for _, _, v in exams)
    threshold = policy.get("threshold")
    limit = Quantity(float(threshold), str(policy.get("unit", "mSv"))).value_in("mSv") if threshold else None
    source = str(policy.get("source") or ref.policy.source.citation)
    return CumulativeDose(total, window, start, when, exams, limit, source,
                          limit is not None and total >= limit)


def repeat_period_days(ref: ReferenceData) -> float:
    """The repeat-examination period (evaluation-policy ``repeat_examination.period_days``)."""
    raw = ref.policy.extra.get("repeat_examination")
    if isinstance(raw, dict) and isinstance(raw.get("period_days"), int | float):
        return float(raw["period_days"])
    return DEFAULT_REPEAT_PERIOD_DAYS


def evaluate_repeats(exam: ExamDose, mapping: ProtocolMapping, when: datetime | None,
                     priors: Sequence[PriorExam], ref: ReferenceData) -> tuple[PriorExam, ...]:
    """Earlier exams of the same standard procedure within the repeat period before this one."""
    period = repeat_period_days(ref)
    if mapping.code is None or when is None or period <= 0:
        return ()
    start = when - timedelta(days=period)
    return tuple(sorted((p for p in priors if p.standard_procedure == mapping.code and start <= p.when
                         and (p.when < when or (p.when == when and p.study_id < exam.study_id))),
                        key=lambda p: p.when))


def _fmt(q: Quantity) -> str:
    return f"{q.value:.4g} {q.unit}"


def _drl_findings(drls: Sequence[DrlResult]) -> list[Finding]:
    """One finding per quantity whose alerting (first applicable) DRL is exceeded."""
    out = []
    for r in drls:
        c = r.comparison
        if not (r.primary and c.exceeded):
            continue
        dset = c.coefficients[0].source
        factor = f" × {c.factor:g}" if c.factor != 1 else ""
        text = (f"{c.quantity} {_fmt(c.value)} exceeds the diagnostic reference level {_fmt(c.drl)}{factor} for "
                f"{c.drl_label} ({c.exam}; DRL set {c.drl_set}: {source_text(dset)}); ratio {c.ratio:.2f}")
        out.append(Finding(f"drl-exceeded/{slug(c.quantity)}", "drl-exceeded", SEVERITY["drl-exceeded"], text,
                           f"{c.drl_set}/{c.exam}/{c.quantity}", tuple(i for i in (r.evidence_id,) if i),
                           "drl-comparison", reference_url=dset.url))
    return out


def _threshold_findings(checks: Sequence[Checked]) -> list[Finding]:
    """One finding per threshold reached (per series for series-level values, else per exam: the highest)."""
    exceeded: dict[str, Checked] = {}
    for ch in checks:
        t = ch.check
        if not t.exceeded:
            continue
        key = f"{t.finding}/{slug(t.threshold_ref)}"
        if t.scope == "series" and ch.evidence_id:
            key += f"/{ch.evidence_id}"
        if key not in exceeded or t.ratio > exceeded[key].check.ratio:
            exceeded[key] = ch
    out = []
    for key, ch in exceeded.items():
        t = ch.check
        source = t.coefficients[0].source
        scope = f"over {t.window_days} days" if t.window_days else f"per {t.scope}"
        text = (f"{t.quantity} {_fmt(t.value)} reached the {t.level} level {_fmt(t.threshold)} {scope} "
                f"({ch.label}; {t.threshold_ref}: {source_text(source)})")
        if t.action:
            text += f". Action: {t.action}"
        severity = SEVERITY.get(t.finding) if t.finding != "fluoro-threshold-exceeded" else None
        out.append(Finding(key, t.finding, severity or _LEVEL_SEVERITY.get(t.level, "moderate"), text,
                           t.threshold_ref, tuple(i for i in (ch.evidence_id,) if i), "threshold-comparison",
                           reference_url=source.url))
    return out


def _findings(exam: ExamDose, drls: Sequence[DrlResult], checks: Sequence[Checked],
              cumulative: CumulativeDose | None, repeats: Sequence[PriorExam], mapping: ProtocolMapping,
              ) -> list[Finding]:
    out = _drl_findings(drls) + _threshold_findings(checks)
    if cumulative is not None and cumulative.exceeded and cumulative.threshold_msv is not None:
        text = (f"cumulative effective dose {cumulative.value_msv:.1f} mSv over {len(cumulative.exams)} exams in "
                f"{cumulative.window_days:g} days reached {cumulative.threshold_msv:g} mSv (evaluation policy; "
                f"{cumulative.source})")
        evidence = tuple(i for _, i, _ in cumulative.exams if i)
        out.append(Finding("cumulative-effective-dose-exceeded", "cumulative-effective-dose-exceeded",
                           SEVERITY["cumulative-effective-dose-exceeded"], text, "evaluation-policy/cumulative",
                           evidence, "cumulative-effective-dose",
                           implicated=tuple(s for s, _, _ in cumulative.exams if s != exam.study_id)))
    if repeats:
        hours = (parse_when(exam.date) or repeats[0].when) - repeats[0].when
        text = (f"{mapping.code} repeated: {len(repeats)} earlier exam(s) of the same standard procedure, the "
                f"first {hours.total_seconds() / 3600:.1f} h before (evaluation policy 'repeat_examination')")
        out.append(Finding("repeat-examination", "repeat-examination", SEVERITY["repeat-examination"], text,
                           "evaluation-policy/repeat_examination",
                           tuple(p.record_id for p in repeats) + tuple(i for i in (exam.evidence_id,) if i),
                           "effective-dose", implicated=tuple(p.study_id for p in repeats)))
    return out


def evaluate_exam(exam: ExamDose, *, age_years: float | None, priors: Sequence[PriorExam],
                  reference: ReferenceData, notes: Sequence[str] = ()) -> ExamEvaluation:
    """Run every rule on one examination; ``priors`` are the patient's other evaluated exams nearby in time."""
    ref = reference
    out_notes = list(notes)
    mapping = standardise_exam(exam_descriptor(exam), ref)
    if mapping.code is None:
        out_notes.append(f"examination not mapped to a standard procedure: {mapping.reason}")
    when = parse_when(exam.date)
    others = [p for p in priors if p.study_id != exam.study_id]
    effective = evaluate_effective_dose(exam, mapping, age_years, ref, out_notes)
    ssde_results = evaluate_ssde(exam, ref, out_notes)
    drls = evaluate_drls(exam, mapping, age_years, ref, out_notes)
    checks = evaluate_threshold_rules(exam, mapping, age_years, others, when, ref, out_notes)
    cumulative = evaluate_cumulative(exam, effective, when, others, ref)
    repeats = evaluate_repeats(exam, mapping, when, others, ref)
    findings = _findings(exam, drls, checks, cumulative, repeats, mapping)
    return ExamEvaluation(exam, mapping, age_years, effective, ssde_results, drls, checks, cumulative, repeats,
                          tuple(findings), tuple(dict.fromkeys(out_notes)))
