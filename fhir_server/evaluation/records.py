"""Read a stored examination back from its FHIR resources into typed records for evaluation.

The dose mapping (:mod:`mappings.rdsr`) stores one ImagingStudy, one IG dose-summary Observation
(LOINC 73569-6) per report and one Observation per irradiation event, all ``partOf`` the study; the
dose values are ``component`` entries selected here by (system, code), never by display text. Values
keep the unit they were stored with (a :class:`~terminology.ucum.Quantity`), so conversions happen once,
in ``terminology``.

Organ doses (for E = Σ w_T · w_R · D_T) have no slot in the IG. DACS reads them from components coded
DCM 113518 "Organ Dose" that carry a second coding naming the ICRP tissue in :data:`TISSUE_SYSTEM`
(``lung``, ``breast``, ``red_bone_marrow``… as in ``terminology/data/tissue_weighting_factors.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from terminology.codes import DCM, LOINC, Coding
from terminology.errors import UnitError
from terminology.ucum import Quantity

SUMMARY_CODE = (LOINC, "73569-6")
EVENT_CODES = frozenset({(DCM, "113852"), (DCM, "113502")})  # irradiation event, radiopharmaceutical admin.
EVALUATION_SYSTEM = "urn:dacs:evaluation"
# Identifier systems of dose summaries taken from a fallback source (``mappings.rdsr.mpps.MPPS_DOSE_SYSTEM``):
# they count only for a study that has no summary from a dose report.
FALLBACK_SUMMARY_SYSTEMS = frozenset({"urn:dacs:mpps-dose"})
TISSUE_SYSTEM = "urn:dacs:icrp-tissue"

# DICOM codes of the values evaluation reads (PS3.16; TID 10011-10015, 10001-10003, 10005, 10022).
CT_DLP_TOTAL = "113813"
CT_EFFECTIVE_DOSE_TOTAL = "113814"
DAP_TOTAL = "113722"
DOSE_RP_TOTAL = "113725"
TOTAL_FLUORO_TIME = "113730"
ACCUMULATED_AGD = "111637"
MEAN_CTDIVOL = "113830"
DLP = "113838"
CTDIW_PHANTOM_TYPE = "113835"
CT_ACQUISITION_TYPE = "113820"
CONSTANT_ANGLE_ACQUISITION = "113805"  # localizer (scout) acquisitions
ACQUISITION_PROTOCOL = "125203"
EFFECTIVE_DOSE = "113839"
SSDE = "113930"
DAP = "122130"
DOSE_RP = "113738"
MEASURED_LATERAL_DIMENSION = "113931"
MEASURED_AP_DIMENSION = "113932"
DERIVED_EFFECTIVE_DIAMETER = "113933"
WATER_EQUIVALENT_DIAMETER = "113980"
ORGAN_DOSE = "113518"
# TID 10015 dose check (notification: per series; alert: accumulated over the examination)
DLP_ALERT_VALUE = "113903"
CTDIVOL_ALERT_VALUE = "113904"
ACCUMULATED_DLP_FORWARD_ESTIMATE = "113905"
ACCUMULATED_CTDIVOL_FORWARD_ESTIMATE = "113906"
DLP_NOTIFICATION_VALUE = "113911"
CTDIVOL_NOTIFICATION_VALUE = "113912"
DLP_FORWARD_ESTIMATE = "113913"
CTDIVOL_FORWARD_ESTIMATE = "113914"


def codings(concept: Mapping[str, Any] | None) -> list[Coding]:
    """The codings of a CodeableConcept (those without a system are skipped)."""
    out = []
    for c in (concept or {}).get("coding") or ():
        if isinstance(c, dict) and c.get("system"):
            out.append(Coding(str(c["system"]), str(c.get("code") or ""), c.get("display")))
    return out


def has_code(concept: Mapping[str, Any] | None, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in (concept or {}).get("coding") or ())


def quantity_of(value: Mapping[str, Any] | None) -> Quantity | None:
    """A FHIR Quantity as a UCUM :class:`Quantity` (None when absent, unit-less or not UCUM)."""
    if not value or not isinstance(value.get("value"), int | float):
        return None
    unit = value.get("code") or value.get("unit")
    if not isinstance(unit, str):
        return None
    try:
        return Quantity(float(value["value"]), unit)
    except UnitError:
        return None


def dcm_components(observation: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Components keyed by their DCM code (a code may repeat, e.g. one AGD per breast)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for comp in observation.get("component") or ():
        for c in (comp.get("code") or {}).get("coding") or ():
            if c.get("system") == DCM and c.get("code"):
                out.setdefault(c["code"], []).append(comp)
                break
    return out


def _first_quantity(comps: Mapping[str, list[dict[str, Any]]], code: str) -> Quantity | None:
    for comp in comps.get(code, ()):
        q = quantity_of(comp.get("valueQuantity"))
        if q is not None:
            return q
    return None


def _first_code(comps: Mapping[str, list[dict[str, Any]]], code: str) -> Coding | None:
    for comp in comps.get(code, ()):
        found = codings(comp.get("valueCodeableConcept"))
        if found:
            return found[0]
    return None


def _string(comps: Mapping[str, list[dict[str, Any]]], code: str) -> str | None:
    for comp in comps.get(code, ()):
        if isinstance(comp.get("valueString"), str):
            return str(comp["valueString"])
    return None


@dataclass(frozen=True)
class DoseCheckValues:
    """TID 10015 values recorded for one CT acquisition (any may be absent)."""

    ctdivol_notification: Quantity | None = None
    dlp_notification: Quantity | None = None
    ctdivol_forward_estimate: Quantity | None = None
    dlp_forward_estimate: Quantity | None = None
    ctdivol_alert: Quantity | None = None
    dlp_alert: Quantity | None = None
    accumulated_ctdivol_forward_estimate: Quantity | None = None
    accumulated_dlp_forward_estimate: Quantity | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, f) is not None for f in ("ctdivol_notification", "dlp_notification",
                                                           "ctdivol_alert", "dlp_alert"))


@dataclass(frozen=True)
class EventDose:
    """The dose values of one irradiation-event Observation."""

    observation_id: str
    ctdivol: Quantity | None = None
    dlp: Quantity | None = None
    phantom: str | None = None  # DCM code of the CTDIw phantom (113690 head, 113691 body)
    localizer: bool = False
    protocol: str | None = None
    target_regions: tuple[Coding, ...] = ()
    dap: Quantity | None = None
    dose_rp: Quantity | None = None
    effective_dose: Quantity | None = None
    water_equivalent_diameter: Quantity | None = None
    effective_diameter: Quantity | None = None
    ap_dimension: Quantity | None = None
    lateral_dimension: Quantity | None = None
    dose_check: DoseCheckValues = DoseCheckValues()
    organ_doses: tuple[tuple[str, Quantity], ...] = ()


@dataclass(frozen=True)
class ExamDose:
    """One examination (ImagingStudy) with the dose values of all its stored reports.

    Totals add up the study's summaries (a "continued" study has one per report); when a study has no
    summary DLP the event DLPs are summed instead (``dlp_from_events``).
    """

    study_id: str
    patient_id: str | None
    date: str | None
    modality: str | None
    description: str | None
    procedure_codes: tuple[Coding, ...]
    summary_ids: tuple[str, ...]
    events: tuple[EventDose, ...]
    dlp_total: Quantity | None = None
    dlp_from_events: bool = False
    recorded_effective_dose: Quantity | None = None
    dap_total: Quantity | None = None
    dose_rp_total: Quantity | None = None
    fluoro_time: Quantity | None = None
    agd: Quantity | None = None
    organ_doses: tuple[tuple[str, Quantity], ...] = ()

    @property
    def dose_observation_ids(self) -> tuple[str, ...]:
        return self.summary_ids + tuple(e.observation_id for e in self.events)

    @property
    def evidence_id(self) -> str | None:
        """The Observation an exam-level finding points to: the first summary, else the first event."""
        ids = self.dose_observation_ids
        return ids[0] if ids else None

    def max_ctdivol_event(self) -> EventDose | None:
        """The non-localizer acquisition with the highest CTDIvol (DRLs for CTDIvol are per sequence)."""
        best: EventDose | None = None
        for e in self.events:
            if e.ctdivol is None or e.localizer:
                continue
            if best is None or best.ctdivol is None or e.ctdivol.value_in("mGy") > best.ctdivol.value_in("mGy"):
                best = e
        return best

    @property
    def target_regions(self) -> tuple[Coding, ...]:
        seen: dict[tuple[str, str], Coding] = {}
        for e in self.events:
            for c in e.target_regions:
                seen.setdefault(c.key(), c)
        return tuple(seen.values())

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.protocol for e in self.events if e.protocol))


def reference_id(reference: Mapping[str, Any] | None, resource_type: str) -> str | None:
    """``<id>`` of a literal reference ``<resource_type>/<id>`` (None for other forms)."""
    ref = (reference or {}).get("reference")
    if isinstance(ref, str) and ref.startswith(resource_type + "/"):
        return ref[len(resource_type) + 1:].split("/_history/")[0]
    return None


def study_modality(study: Mapping[str, Any]) -> str | None:
    """The irradiating modality of a study: the first ``modality`` that is not SR/KO/PR (document objects)."""
    for m in study.get("modality") or ():
        code = m.get("code")
        if code and code not in ("SR", "KO", "PR", "DOC"):
            return str(code)
    return None


def _sum(values: Iterable[Quantity | None]) -> Quantity | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    unit = present[0].unit
    return Quantity(sum(v.value_in(unit) for v in present), unit)


def _max(values: Iterable[Quantity | None]) -> Quantity | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    unit = present[0].unit
    return Quantity(max(v.value_in(unit) for v in present), unit)


def _organ_doses(observation: Mapping[str, Any]) -> tuple[tuple[str, Quantity], ...]:
    out = []
    for comp in observation.get("component") or ():
        concept = comp.get("code") or {}
        if not has_code(concept, DCM, ORGAN_DOSE):
            continue
        tissue = next((c.code for c in codings(concept) if c.system == TISSUE_SYSTEM), None)
        q = quantity_of(comp.get("valueQuantity"))
        if tissue and q is not None:
            out.append((tissue, q))
    return tuple(out)


# EventDose / DoseCheckValues field -> the DICOM code of the component holding it
_EVENT_QUANTITIES = {
    "ctdivol": MEAN_CTDIVOL, "dlp": DLP, "dap": DAP, "dose_rp": DOSE_RP, "effective_dose": EFFECTIVE_DOSE,
    "water_equivalent_diameter": WATER_EQUIVALENT_DIAMETER, "effective_diameter": DERIVED_EFFECTIVE_DIAMETER,
    "ap_dimension": MEASURED_AP_DIMENSION, "lateral_dimension": MEASURED_LATERAL_DIMENSION,
}
_DOSE_CHECK_FIELDS = {
    "ctdivol_notification": CTDIVOL_NOTIFICATION_VALUE, "dlp_notification": DLP_NOTIFICATION_VALUE,
    "ctdivol_forward_estimate": CTDIVOL_FORWARD_ESTIMATE, "dlp_forward_estimate": DLP_FORWARD_ESTIMATE,
    "ctdivol_alert": CTDIVOL_ALERT_VALUE, "dlp_alert": DLP_ALERT_VALUE,
    "accumulated_ctdivol_forward_estimate": ACCUMULATED_CTDIVOL_FORWARD_ESTIMATE,
    "accumulated_dlp_forward_estimate": ACCUMULATED_DLP_FORWARD_ESTIMATE,
}


def parse_event(observation: Mapping[str, Any]) -> EventDose:
    """Read one irradiation-event Observation (TID 10013 CT or TID 10003 projection)."""
    comps = dcm_components(observation)
    acquisition = _first_code(comps, CT_ACQUISITION_TYPE)
    phantom = _first_code(comps, CTDIW_PHANTOM_TYPE)
    check = DoseCheckValues(**{name: _first_quantity(comps, code) for name, code in _DOSE_CHECK_FIELDS.items()})
    return EventDose(
        observation_id=str(observation.get("id", "")),
        phantom=phantom.code if phantom is not None and phantom.system == DCM else None,
        localizer=acquisition is not None and acquisition.system == DCM
        and acquisition.code == CONSTANT_ANGLE_ACQUISITION,
        protocol=_string(comps, ACQUISITION_PROTOCOL),
        target_regions=tuple(codings(observation.get("bodySite"))),
        dose_check=check,
        organ_doses=_organ_doses(observation),
        **{name: _first_quantity(comps, code) for name, code in _EVENT_QUANTITIES.items()},
    )


def is_summary(observation: Mapping[str, Any]) -> bool:
    return has_code(observation.get("code"), *SUMMARY_CODE)


def is_event(observation: Mapping[str, Any]) -> bool:
    return any(has_code(observation.get("code"), s, c) for s, c in EVENT_CODES)


def is_fallback_summary(observation: Mapping[str, Any]) -> bool:
    """Whether a dose summary comes from a fallback source (MPPS) rather than a dose report."""
    return any(i.get("system") in FALLBACK_SUMMARY_SYSTEMS for i in observation.get("identifier") or ())


def preferred_summaries(summaries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The summaries a study's dose is taken from: its dose reports' when it has any, else the fallbacks'.

    An MPPS repeats what the RDSR of the same step reports, so counting both would double the dose.
    """
    reports = [s for s in summaries if not is_fallback_summary(s)]
    return reports if reports else list(summaries)


def is_derived(resource: Mapping[str, Any]) -> bool:
    """Whether a resource was written by dose evaluation (it carries an ``urn:dacs:evaluation`` identifier)."""
    return any(i.get("system") == EVALUATION_SYSTEM for i in resource.get("identifier") or ())


def parse_exam(study: Mapping[str, Any], observations: Sequence[Mapping[str, Any]]) -> ExamDose:
    """Build the :class:`ExamDose` of a stored ImagingStudy from its dose Observations.

    ``observations`` may include anything ``partOf`` the study; only dose summaries and irradiation
    events are read (evaluation results are skipped).
    """
    summaries = preferred_summaries([o for o in observations
                                     if is_summary(o) and o.get("status") not in ("entered-in-error",)])
    events = tuple(parse_event(o) for o in observations
                   if is_event(o) and not is_derived(o) and o.get("status") not in ("entered-in-error",))
    summary_comps = [dcm_components(s) for s in summaries]
    dlp_total = _sum(_first_quantity(c, CT_DLP_TOTAL) for c in summary_comps)
    dlp_from_events = False
    if dlp_total is None:
        dlp_total = _sum(e.dlp for e in events)
        dlp_from_events = dlp_total is not None
    recorded_e = _sum(_first_quantity(c, CT_EFFECTIVE_DOSE_TOTAL) for c in summary_comps)
    if recorded_e is None:
        recorded_e = _sum(e.effective_dose for e in events)
    dap_total = _sum(_first_quantity(c, DAP_TOTAL) for c in summary_comps) or _sum(e.dap for e in events)
    dose_rp_total = _sum(_first_quantity(c, DOSE_RP_TOTAL) for c in summary_comps) or _sum(
        e.dose_rp for e in events)
    agd = _max(quantity_of(comp.get("valueQuantity")) for c in summary_comps for comp in c.get(ACCUMULATED_AGD, ()))
    # organ doses of the whole exam: the summaries' when they give any, else the events' added up
    organs: dict[str, Quantity] = {}
    sources = [o for o in summaries if _organ_doses(o)] or [o for o in observations if is_event(o)]
    for source in sources:
        for tissue, q in _organ_doses(source):
            organs[tissue] = q if tissue not in organs else _sum((organs[tissue], q)) or q
    started = study.get("started")
    if not started:
        started = next((s.get("effectiveDateTime") for s in summaries if s.get("effectiveDateTime")), None)
    patient = reference_id(study.get("subject"), "Patient")
    procedure_codes = tuple(c for concept in study.get("procedureCode") or () for c in codings(concept))
    return ExamDose(
        study_id=str(study.get("id", "")),
        patient_id=patient,
        date=started,
        modality=study_modality(study),
        description=study.get("description"),
        procedure_codes=procedure_codes,
        summary_ids=tuple(str(s.get("id", "")) for s in summaries),
        events=events,
        dlp_total=dlp_total,
        dlp_from_events=dlp_from_events,
        recorded_effective_dose=recorded_e,
        dap_total=dap_total,
        dose_rp_total=dose_rp_total,
        fluoro_time=_sum(_first_quantity(c, TOTAL_FLUORO_TIME) for c in summary_comps),
        agd=agd,
        organ_doses=tuple(organs.items()),
    )
