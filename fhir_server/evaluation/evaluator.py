"""Evaluate a stored examination and write the results: the only part of evaluation that does I/O.

``DoseEvaluator.evaluate_study`` reads the ImagingStudy, every Observation ``partOf`` it (dose summary,
irradiation events and the evaluation results of an earlier run), the Patient's birth date and the
evaluation records of the patient's other exams near in time; runs :func:`rules.evaluate_exam`; and
writes what changed in ONE transaction Bundle of conditional PUTs (identifier
``urn:dacs:evaluation|<study id>/<key>``), so re-evaluation updates instead of duplicating and a
concurrent evaluation of the same study cannot create a second copy.

Findings that no longer hold are withdrawn: R4 binds ``DetectedIssue.status`` to ObservationStatus,
which has no "resolved"; DACS sets ``entered-in-error`` (the one withdrawal status R5's
DetectedIssueStatus kept) and says when and why in ``detail``. A finding that comes back is ``final``
again. Evaluation Observations no longer produced (e.g. no DRL applies after a mapping change) are set
to ``entered-in-error`` the same way. Resources whose content did not change are not rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fhir_server.bundle import BundleProcessor
from fhir_server.errors import NotFound
from fhir_server.evaluation import resources as fhir
from fhir_server.evaluation.records import (
    EVALUATION_SYSTEM,
    ExamDose,
    codings,
    dcm_components,
    has_code,
    is_derived,
    parse_exam,
    quantity_of,
    reference_id,
)
from fhir_server.evaluation.rules import (
    ExamEvaluation,
    PriorExam,
    evaluate_exam,
    parse_when,
    repeat_period_days,
)
from fhir_server.search.request import parse_search
from fhir_server.service import FhirService, now_instant
from fhir_server.storage.base import StoredResource
from terminology.age import age_at
from terminology.errors import TerminologyError
from terminology.reference import ReferenceData, load_reference

WITHDRAWN = "entered-in-error"
OPEN_STATUSES = ("preliminary", "final", "amended", "corrected")
SEARCH_LIMIT = 100_000
RECORD_KEY = "effective-dose"


@dataclass(frozen=True)
class IssueOutcome:
    """What happened to one DetectedIssue: ``created``, ``updated``, ``unchanged`` or ``withdrawn``."""

    key: str
    id: str
    action: str
    code: str
    severity: str | None
    detail: str


@dataclass(frozen=True)
class EvaluationReport:
    """The result of evaluating one study: what was computed and what was written."""

    study_id: str
    evaluation: ExamEvaluation
    records: Mapping[str, str]  # evaluation key -> Observation id
    issues: tuple[IssueOutcome, ...]
    written: int
    provenance_id: str
    notes: tuple[str, ...] = field(default=())

    @property
    def findings(self) -> tuple[IssueOutcome, ...]:
        """The open findings (issues created, updated or unchanged by this evaluation)."""
        return tuple(i for i in self.issues if i.action != "withdrawn")

    @property
    def withdrawn(self) -> tuple[IssueOutcome, ...]:
        return tuple(i for i in self.issues if i.action == "withdrawn")


def _strip(resource: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    out = dict(resource)
    for key in ("meta", *keys):
        out.pop(key, None)
    return out


def _identifier_key(resource: Mapping[str, Any], study_id: str) -> str | None:
    prefix = f"{study_id}/"
    for ident in resource.get("identifier") or ():
        value = ident.get("value")
        if ident.get("system") == EVALUATION_SYSTEM and isinstance(value, str) and value.startswith(prefix):
            return value[len(prefix):]
    return None


def prior_from_record(record: Mapping[str, Any]) -> PriorExam | None:
    """A :class:`PriorExam` from a stored ``effective-dose`` evaluation record (None if unusable)."""
    study_id = next((reference_id(p, "ImagingStudy") for p in record.get("partOf") or ()), None)
    when = parse_when(record.get("effectiveDateTime"))
    if study_id is None or when is None or record.get("status") == WITHDRAWN:
        return None
    procedure = modality = None
    for comp in record.get("component") or ():
        concept = comp.get("code") or {}
        if has_code(concept, fhir.COMPONENT_SYSTEM, "standard-procedure"):
            procedure = next((c.code for c in codings(comp.get("valueCodeableConcept"))), None)
        elif has_code(concept, fhir.COMPONENT_SYSTEM, "modality"):
            modality = next((c.code for c in codings(comp.get("valueCodeableConcept"))), None)
    comps = dcm_components(record)
    ka_r = next((q for c in comps.get("113725", ()) if (q := quantity_of(c.get("valueQuantity")))), None)
    dap = next((q for c in comps.get("113722", ()) if (q := quantity_of(c.get("valueQuantity")))), None)
    e = quantity_of(record.get("valueQuantity"))
    try:
        return PriorExam(study_id, when, str(record.get("id")), procedure, modality,
                         e.value_in("mSv") if e else None, ka_r.value_in("mGy") if ka_r else None,
                         dap.value_in("Gy.cm2") if dap else None)
    except TerminologyError:
        return None


class DoseEvaluator:
    """Evaluates stored examinations against the site's reference data and records the results.

    Parameters
    ----------
    service
        The FHIR service whose store holds the examinations (results are written through it).
    reference
        Fixed reference data; by default the shipped data merged with ``<data dir>/reference``
        (re-read when a site file changes).
    """

    def __init__(self, service: FhirService, reference: ReferenceData | None = None) -> None:
        self.service = service
        self._reference = reference

    @property
    def reference(self) -> ReferenceData:
        if self._reference is not None:
            return self._reference
        return load_reference(Path(self.service.settings.data_dir) / "reference")

    # -- reads ---------------------------------------------------------------------------------
    def _search(self, type_: str, query: list[tuple[str, str]]) -> list[StoredResource]:
        request = parse_search(type_, query)
        page = self.service.store.search(type_, self.service.plan(request), (), count=SEARCH_LIMIT, offset=0,
                                         total=False)
        return page.resources

    def _age(self, patient_id: str | None, when: str | None) -> tuple[float | None, list[str], bool]:
        if patient_id is None:
            return None, ["the study has no Patient: age unknown"], False
        stored = self.service.store.read("Patient", patient_id)
        if stored is None or stored.deleted:
            return None, [f"Patient/{patient_id} is not stored: age unknown"], False
        birth = stored.resource().get("birthDate")
        if not birth:
            return None, ["the patient's birth date is unknown: age unknown"], True
        if not when:
            return None, ["the examination date is unknown: age unknown"], True
        try:
            return age_at(birth, when), [], True
        except TerminologyError as exc:
            return None, [f"age: {exc}"], True

    def _priors(self, exam: ExamDose, ref: ReferenceData) -> list[PriorExam]:
        when = parse_when(exam.date)
        if exam.patient_id is None or when is None:
            return []
        days = [repeat_period_days(ref), float(ref.policy.cumulative_effective_dose.get("window_days") or 0)]
        days += [float(t.window_days) for s in ref.policy.fluoro_threshold_sets
                 for t in ref.fluoro_thresholds[s].thresholds if t.window_days]
        start = when - timedelta(days=max(days))
        query = [("subject", f"Patient/{exam.patient_id}"), ("code", f"{fhir.DCM}|113839"),
                 ("identifier", f"{EVALUATION_SYSTEM}|"),
                 ("date", "ge" + start.strftime("%Y-%m-%dT%H:%M:%SZ")),
                 ("date", "le" + when.strftime("%Y-%m-%dT%H:%M:%SZ"))]
        priors = []
        for stored in self._search("Observation", query):
            prior = prior_from_record(stored.resource())
            if prior is not None and prior.study_id != exam.study_id:
                priors.append(prior)
        return priors

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate_study(self, study_id: str) -> EvaluationReport:
        """Evaluate ``ImagingStudy/<study_id>`` and create/update its results and DetectedIssues.

        Raises
        ------
        NotFound
            If the study is not stored (or deleted).
        """
        return self.evaluate_studies([study_id])[0]

    def evaluate_studies(self, study_ids: Iterable[str]) -> list[EvaluationReport]:
        """Evaluate several studies and write all their results in ONE transaction.

        For a queue of freshly ingested studies: one commit for the batch instead of one per study.
        Studies of the same patient in the batch see each other (in the order given) as prior exams.

        Raises
        ------
        NotFound
            If a study is not stored (nothing is written then).
        """
        ref = self.reference
        batch_priors: dict[str, list[PriorExam]] = {}
        plans: list[tuple[EvaluationReport, list[dict[str, Any]]]] = []
        for study_id in dict.fromkeys(study_ids):
            report, entries, record = self._plan(study_id, ref, batch_priors)
            plans.append((report, entries))
            prior = prior_from_record(record)
            if prior is not None and report.evaluation.exam.patient_id:
                batch_priors.setdefault(report.evaluation.exam.patient_id, []).append(prior)
        entries = [e for _, es in plans for e in es]
        if entries:
            BundleProcessor(self.service).transaction(entries)
        return [report for report, _ in plans]

    def _plan(self, study_id: str, ref: ReferenceData, batch_priors: Mapping[str, Sequence[PriorExam]],
              ) -> tuple[EvaluationReport, list[dict[str, Any]], dict[str, Any]]:
        """Read and evaluate one study; return its report, the entries to write and its evaluation record."""
        stored_study = self.service.store.read("ImagingStudy", study_id)
        if stored_study is None or stored_study.deleted:
            raise NotFound(f"ImagingStudy/{study_id} is not known")
        study = stored_study.resource()
        observations = [r.resource() for r in self._search("Observation", [("part-of", f"ImagingStudy/{study_id}")])]
        dose_obs = [o for o in observations if not is_derived(o)]
        exam = parse_exam(study, dose_obs)
        age, age_notes, patient_used = self._age(exam.patient_id, exam.date)
        in_batch = list(batch_priors.get(exam.patient_id or "", ()))
        batch_ids = {p.study_id for p in in_batch}
        priors = [p for p in self._priors(exam, ref) if p.study_id not in batch_ids] + in_batch
        evaluation = evaluate_exam(exam, age_years=age, priors=priors, reference=ref, notes=age_notes)
        existing_obs = {k: o for o in observations if is_derived(o) and (k := _identifier_key(o, study_id))}
        issues = [r.resource() for r in self._search("DetectedIssue", [("implicated", f"ImagingStudy/{study_id}"),
                                                                        ("identifier", f"{EVALUATION_SYSTEM}|")])]
        existing_issues = {k: i for i in issues if (k := _identifier_key(i, study_id))}
        return self._entries(evaluation, existing_obs, existing_issues, ref, patient_used)

    def _entries(self, ev: ExamEvaluation, existing_obs: Mapping[str, dict[str, Any]],
                 existing_issues: Mapping[str, dict[str, Any]], ref: ReferenceData,
                 patient_used: bool) -> tuple[EvaluationReport, list[dict[str, Any]], dict[str, Any]]:
        sid = ev.exam.study_id
        now = now_instant()
        desired: dict[str, dict[str, Any]] = {RECORD_KEY: fhir.effective_dose_record(ev, ref)}
        if ev.drl:
            desired["drl-comparison"] = fhir.drl_record(ev, ev.drl)
        if ev.thresholds:
            desired["threshold-comparison"] = fhir.threshold_record(ev, ev.thresholds)
        for item in ev.ssde:
            desired[f"ssde/{item.event_id}"] = fhir.ssde_record(ev, item)
        record_ids = {key: self._id_for("Observation", sid, key, existing_obs) for key in desired}
        cumulative = ev.cumulative
        if cumulative is not None and cumulative.exceeded:
            key = "cumulative-effective-dose"
            record_ids[key] = self._id_for("Observation", sid, key, existing_obs)
            desired[key] = fhir.cumulative_record(ev, cumulative, {sid: record_ids[RECORD_KEY]})
        entries: list[dict[str, Any]] = []
        for key, resource in desired.items():
            resource["id"] = record_ids[key]
            self._put(entries, "Observation", sid, key, resource, existing_obs.get(key))
        for key, old in existing_obs.items():
            if key not in desired and old.get("status") != WITHDRAWN:
                withdrawn = {**_strip(old), "status": WITHDRAWN}
                withdrawn["note"] = [*old.get("note", []), {"text": f"withdrawn on {now}: re-evaluation no longer "
                                                                     "produces this result"}]
                self._put(entries, "Observation", sid, key, withdrawn, old)
        outcomes: list[IssueOutcome] = []
        issue_ids: list[str] = []
        for finding in ev.findings:
            old_issue = existing_issues.get(finding.key)
            identified = None
            if old_issue is not None and old_issue.get("status") != WITHDRAWN:
                identified = old_issue.get("identifiedDateTime")
            issue = fhir.detected_issue(ev, finding, record_ids, identified or now)
            issue["id"] = self._id_for("DetectedIssue", sid, finding.key, existing_issues)
            action = self._put(entries, "DetectedIssue", sid, finding.key, issue, old_issue)
            outcomes.append(IssueOutcome(finding.key, issue["id"], action, finding.code, finding.severity,
                                         finding.text))
            issue_ids.append(issue["id"])
        current = {f.key for f in ev.findings}
        for key, old in existing_issues.items():
            if key in current or old.get("status") == WITHDRAWN:
                continue
            was = old.get("detail", "")
            withdrawn = {**_strip(old), "status": WITHDRAWN,
                         "detail": f"Withdrawn on {now}: re-evaluation no longer finds this. Was: {was}"}
            self._put(entries, "DetectedIssue", sid, key, withdrawn, old)
            code = next((c.code for c in codings(old.get("code"))), "")
            outcomes.append(IssueOutcome(key, str(old["id"]), "withdrawn", code, old.get("severity"),
                                         withdrawn["detail"]))
        targets = [f"Observation/{i}" for i in record_ids.values()] + [f"DetectedIssue/{i}" for i in issue_ids]
        provenance_id = fhir.resource_id("Provenance", fhir.identifier_value(sid, "provenance"))
        prov = fhir.provenance(ev, targets, now, ref, patient_used)
        prov["id"] = provenance_id
        if entries or self._provenance_changed(prov):
            entries.append({"resource": prov, "request": {"method": "PUT", "url": f"Provenance/{provenance_id}"}})
        report = EvaluationReport(sid, ev, record_ids, tuple(outcomes), len(entries), provenance_id, ev.notes)
        return report, entries, desired[RECORD_KEY]

    def _provenance_changed(self, prov: Mapping[str, Any]) -> bool:
        stored = self.service.store.read("Provenance", str(prov["id"]))
        if stored is None or stored.deleted:
            return True
        return _strip(stored.resource(), "recorded") != _strip(prov, "recorded")

    @staticmethod
    def _id_for(resource_type: str, study_id: str, key: str, existing: Mapping[str, Mapping[str, Any]]) -> str:
        old = existing.get(key)
        if old is not None and old.get("id"):
            return str(old["id"])
        return fhir.resource_id(resource_type, fhir.identifier_value(study_id, key))

    @staticmethod
    def _put(entries: list[dict[str, Any]], resource_type: str, study_id: str, key: str,
             resource: dict[str, Any], old: Mapping[str, Any] | None) -> str:
        """Queue a conditional PUT unless ``old`` already has this content; returns the action."""
        if old is not None and _strip(old) == _strip(resource):
            return "unchanged"
        value = fhir.identifier_value(study_id, key)
        entries.append({"resource": resource, "request": {"method": "PUT",
                                    "url": f"{resource_type}?identifier={EVALUATION_SYSTEM}|{value}"}})
        return "created" if old is None else "updated"


def study_ids_of(entries: Sequence[Any]) -> list[str]:
    """The ImagingStudy ids written by a transaction (``BundleProcessor.transaction`` result entries)."""
    out = []
    for e in entries:
        stored = getattr(e, "stored", None)
        if stored is not None and stored.type == "ImagingStudy" and not stored.deleted:
            out.append(stored.id)
    return out
