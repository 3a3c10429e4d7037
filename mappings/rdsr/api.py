"""Public entry points of the dose-report mapping: a DICOM dataset in, a FHIR R4 transaction Bundle out.

Contract with the server (which applies the Bundle with the FHIR transaction rules):

* every entry has ``fullUrl = urn:uuid:<uuid5 of a stable key>``; references between entries use those
  URNs, so the same input always gives byte-identical Bundles;
* every write is conditional, so re-sending an object is idempotent:

  ============================  ======================================================================
  resource                      request
  ============================  ======================================================================
  Patient                       ``POST Patient`` + ``ifNoneExist: identifier=<issuer system>|<ID>``
                                (system from :func:`mappings.dicom_common.issuer_system`; no ID →
                                placeholder ``urn:dacs:placeholder-patient|urn:oid:<study uid>``)
  Practitioner (with Person ID) ``POST Practitioner`` + ``ifNoneExist``; without an ID it is contained in
                                the summary Observation (it cannot be identified independently)
  Device                        ``PUT Device?identifier=…`` keyed by :func:`fhir.device_key`
  ImagingStudy                  ``PUT ImagingStudy?identifier=urn:dicom:uid|urn:oid:<study uid>``
  event Observations            ``PUT Observation?identifier=urn:dicom:uid|urn:oid:<event uid>``
  summary Observation           ``PUT Observation?identifier=urn:dacs:dose-accumulation|<key>``
  ============================  ======================================================================

* ``ImagingStudy.basedOn`` is left to the server's reconciliation step: a stored resource cannot hold a
  conditional reference, so the accession number is given as an ImagingStudy identifier of type ACSN
  (as the FHIR ImagingStudy page prescribes) and the server links the ServiceRequest with the same
  accession identifier when both exist;
* a conditional PUT replaces the whole ImagingStudy; the ``series`` list only holds what this report
  knows (its own SR series). :func:`merge_imaging_study` unions the series of the stored and the
  incoming resource for a server that wants to keep both (continued studies, image headers).

Summary identity (cumulative and continued studies): the summary Observation is keyed by the
*accumulation key* ``<study uid>/<uid of the report's first event>``. A Siemens cumulative re-send
repeats the earlier events first, so it has the same key and its (larger) summary replaces the
earlier one; a "continued" report of the same study starts with a different event, so both summaries
are kept and the study's dose is their sum. Per-event Observations are keyed by Irradiation Event UID,
so events repeated in re-sends are written once. Before applying a summary the pipeline should call
:func:`supersedes` with the event UIDs of the summary stored under the same key (read them with
:func:`summary_event_uids`); if it returns False (an older, smaller report arriving late), apply
:meth:`MappingResult.without_summary` instead.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, replace

from pydicom.dataset import Dataset

from mappings.dicom_common import DICOM_UID_SYSTEM, issuer_system, uid_to_urn
from mappings.rdsr import codes as c
from mappings.rdsr.classify import DECODING_ERRORS, DatasetKind, classify_dataset
from mappings.rdsr.codes import codeable_concept
from mappings.rdsr.errors import MalformedReportError, RdsrMappingError
from mappings.rdsr.fhir import (
    ACCUMULATION_SYSTEM,
    DCM,
    LOINC,
    OBSERVATION_CATEGORY,
    SUMMARY_PROFILE,
    MappingOptions,
    administration_components,
    authorizing_persons,
    concept,
    conditional_create,
    conditional_put,
    ct_event_components,
    device_entry,
    entry,
    fhir_time,
    full_url,
    header_time,
    modality_of,
    patient_entry,
    practitioner,
    projection_event_components,
    summary_components,
    summary_text,
    uid_identifier,
    v2_identifier_type,
)
from mappings.rdsr.projection import breast_with_laterality
from mappings.rdsr.records import DoseReportTemplate, DoseStudy
from mappings.rdsr.report import parse_dose_report

__all__ = [
    "DatasetKind",
    "MappingOptions",
    "MappingResult",
    "accumulation_key",
    "classify_dataset",
    "map_dose_report",
    "map_dose_study",
    "merge_imaging_study",
    "summary_event_uids",
    "supersedes",
]


@dataclass(frozen=True)
class MappingResult:
    """What a mapping produced: the transaction Bundle, warnings, and the keys the pipeline needs.

    ``summary_identifier`` is the (system, value) the summary Observation is stored under (None for
    image-header mappings), ``event_uids`` the irradiation/administration event UIDs of the report.
    """

    kind: DatasetKind
    bundle: dict
    warnings: tuple[str, ...]
    study_instance_uid: str
    sop_instance_uid: str
    patient_identifier: tuple[str, str]
    summary_identifier: tuple[str, str] | None
    event_uids: frozenset[str]

    @property
    def event_count(self) -> int:
        return len(self.event_uids)

    def without_summary(self) -> MappingResult:
        """The same result without the summary Observation entry (for a late, superseded re-send)."""
        if self.summary_identifier is None:
            return self
        system, value = self.summary_identifier
        url = conditional_put("Observation", system, value)["url"]
        entries = [e for e in self.bundle["entry"] if e["request"].get("url") != url]
        bundle = {**self.bundle, "entry": entries}
        return replace(self, bundle=bundle, summary_identifier=None)


def accumulation_key(study: DoseStudy) -> str:
    """``<study uid>/<first event uid>`` (or ``/<sop instance uid>`` when the report lists no event)."""
    first = study.event_uids_in_order[0] if study.event_uids_in_order else study.context.sop_instance_uid
    return f"{study.context.study_instance_uid}/{first}"


def supersedes(new: MappingResult | DoseStudy, old_event_uids: Collection[str]) -> bool:
    """True when ``new`` should replace a stored summary that covered ``old_event_uids``.

    A report supersedes when its events include every stored event (a cumulative re-send, or the same
    report again). A report that lacks some stored events is older or partial: the stored summary stays.
    """
    return set(old_event_uids) <= set(new.event_uids)


def summary_event_uids(summary: dict) -> frozenset[str]:
    """The event UIDs a stored summary Observation covers (from its ``hasMember`` identifiers)."""
    uids = set()
    for member in summary.get("hasMember", ()):
        ident = member.get("identifier") or {}
        value = ident.get("value", "")
        if ident.get("system") == DICOM_UID_SYSTEM and value.startswith("urn:oid:"):
            uids.add(value[len("urn:oid:"):])
    return frozenset(uids)


def _union(stored: list, incoming: list, key) -> list:  # type: ignore[no-untyped-def]
    """Stored items first, in their order (replaced by the incoming version when both have one), then
    the new ones: merging the objects of one study in any order gives the same list."""
    fresh = {key(x): x for x in incoming}
    merged = [copy.deepcopy(fresh.pop(key(x), x)) for x in stored]
    return merged + [copy.deepcopy(x) for x in incoming if key(x) in fresh]


def merge_imaging_study(stored: dict, incoming: dict) -> dict:
    """``incoming`` merged into ``stored``: series (and their instances, matched by UID), identifiers
    and modalities are unioned in a stable order, so a study built from several objects (continued
    studies, image headers) is the same whatever order they arrive in. Pure; for a server that merges
    before a PUT."""
    merged = copy.deepcopy(incoming)
    old_series = {x["uid"]: x for x in stored.get("series", [])}
    series = []
    for item in _union(stored.get("series", []), incoming.get("series", []), lambda x: x["uid"]):
        before = old_series.get(item["uid"])
        if before is not None and item is not before:
            item["instance"] = _union(before.get("instance", []), item.get("instance", []), lambda i: i["uid"])
        series.append(item)
    if series:
        merged["series"] = series
    for field, key in (("identifier", lambda i: (i.get("system"), i.get("value"))),
                       ("modality", lambda m: (m.get("system"), m.get("code")))):
        if stored.get(field) or incoming.get(field):
            merged[field] = _union(stored.get(field, []), incoming.get(field, []), key)
    return merged


def map_dose_report(ds: Dataset, options: MappingOptions | None = None) -> MappingResult:
    """Map an RDSR / RRDSR dataset (TID 10011, 10001, 10021) to a FHIR transaction Bundle.

    Raises :class:`mappings.rdsr.errors.RdsrMappingError` (a subclass saying why) when the object is not
    a dose report DACS maps or is malformed; never another exception type.
    """
    kind = classify_dataset(ds)
    study = parse_dose_report(ds, kind)
    try:
        return map_dose_study(study, kind, options or MappingOptions())
    except RdsrMappingError:
        raise
    except DECODING_ERRORS as exc:
        raise MalformedReportError(f"dose report cannot be mapped: {type(exc).__name__}: {exc}") from exc


def _imaging_study_entry(study: DoseStudy, patient_url: str, modality: str, started: str | None,
                         options: MappingOptions, warnings: list[str]) -> dict:
    ctx = study.context
    identifiers: list[dict] = [uid_identifier(ctx.study_instance_uid, "study-instance-uid")]
    if ctx.accession_number:
        system = issuer_system(ctx.accession_issuer_namespace, ctx.accession_issuer_universal_id,
                               ctx.accession_issuer_universal_id_type, default=options.local_accession_system)
        identifiers.append({"use": "usual", "type": v2_identifier_type("ACSN"), "system": system,
                            "value": ctx.accession_number})
    else:
        warnings.append("Accession Number (0008,0050) is empty: the study cannot be linked to its order")
    resource: dict = {
        "resourceType": "ImagingStudy",
        "identifier": identifiers,
        "status": "available",
        "modality": [{"system": DCM, "code": modality}, {"system": DCM, "code": "SR"}],
        "subject": {"reference": patient_url},
    }
    if started:
        resource["started"] = started
    if ctx.study_description:
        resource["description"] = ctx.study_description
    if ctx.series_instance_uid:
        instance: dict = {"uid": ctx.sop_instance_uid,
                          "sopClass": {"system": "urn:ietf:rfc:3986", "code": uid_to_urn(ctx.sop_class_uid)}}
        if ctx.instance_number is not None:
            instance["number"] = ctx.instance_number
        series: dict = {"uid": ctx.series_instance_uid, "modality": {"system": DCM, "code": "SR"},
                        "instance": [instance]}
        if ctx.series_number is not None:
            series["number"] = ctx.series_number
        resource["series"] = [series]
        resource["numberOfSeries"] = 1
        resource["numberOfInstances"] = 1
    else:
        warnings.append("Series Instance UID is missing: the report is not listed as a series of the study")
    key = uid_to_urn(ctx.study_instance_uid)
    return entry(resource, full_url("ImagingStudy", key),
                 conditional_put("ImagingStudy", DICOM_UID_SYSTEM, key))


def _effective(study: DoseStudy, options: MappingOptions, warnings: list[str]) -> str | None:
    """Irradiation start: 113809, else the earliest event start (111526 / 123003), else the header dates."""
    ctx = study.context
    events = sorted(t for t in (fhir_time(e.started, ctx, options) for e in study.projection_events) if t)
    admins = sorted(t for t in (fhir_time(a.start, ctx, options) for a in study.administrations) if t)
    first = fhir_time(study.start_of_irradiation, ctx, options)
    if first:
        return first
    if events or admins:
        return (events or admins)[0]
    for date, time, label in ((ctx.series_date, ctx.series_time, "Series"), (ctx.study_date, ctx.study_time, "Study"),
                              (ctx.content_date, ctx.content_time, "Content")):
        value = header_time(date, time, ctx, options)
        if value:
            warnings.append(f"no irradiation start time in the report; the {label} Date/Time is used")
            return value
    warnings.append("no irradiation start time and no usable header date: the summary has no effective time")
    return None


def map_dose_study(study: DoseStudy, kind: DatasetKind, options: MappingOptions | None = None) -> MappingResult:
    """Emit the transaction Bundle for an already parsed :class:`DoseStudy`."""
    options = options or MappingOptions()
    warnings: list[str] = list(study.warnings)
    ctx = study.context
    modality = modality_of(study)
    patient, patient_key = patient_entry(study.patient, ctx, options, warnings)
    patient_ref = {"reference": patient["fullUrl"]}
    effective = _effective(study, options, warnings)
    started = header_time(ctx.study_date, ctx.study_time, ctx, options) or effective
    imaging = _imaging_study_entry(study, patient["fullUrl"], modality, started, options, warnings)
    study_ref = {"reference": imaging["fullUrl"]}
    device = device_entry(study.equipment, modality, options, warnings)
    device_ref = {"reference": device["fullUrl"]}
    entries = [patient, imaging, device]
    category = [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}]

    # per-event Observations
    members: list[dict] = []
    for event, components, code_key, body_site in _events(study):
        resource: dict = {
            "resourceType": "Observation",
            "identifier": [uid_identifier(event.event_uid, "irradiation-event-uid")],
            "status": "final",
            "category": category,
            "code": concept(code_key),
            "subject": patient_ref,
            "partOf": [study_ref],
            "device": device_ref,
            "component": components,
        }
        started_at = fhir_time(getattr(event, "started", None) or getattr(event, "start", None), ctx, options)
        if started_at or effective:
            resource["effectiveDateTime"] = started_at or effective
        if body_site:
            resource["bodySite"] = body_site
        key = uid_to_urn(event.event_uid)
        url = full_url("Observation", f"{DICOM_UID_SYSTEM}|{key}")
        entries.append(entry(resource, url, conditional_put("Observation", DICOM_UID_SYSTEM, key)))
        members.append({"reference": url, "identifier": {"system": DICOM_UID_SYSTEM, "value": key}})

    # summary Observation (IG RadiationDoseSummary)
    components = summary_components(study, warnings)
    summary: dict = {
        "resourceType": "Observation",
        "identifier": [uid_identifier(ctx.sop_instance_uid, "sop-instance-uid"),
                       {"system": ACCUMULATION_SYSTEM, "value": accumulation_key(study)}],
        "partOf": [study_ref],
        "status": "final",
        "category": category,
        "code": {"coding": [{"system": LOINC, "code": "73569-6",
                             "display": "Radiation exposure and protection information [Description] Document "
                                        "Diagnostic imaging"}]},
        "subject": patient_ref,
        "focus": [study_ref],
        "device": device_ref,
        "valueString": summary_text(study, components),
        "component": components,
    }
    if effective:
        summary["effectiveDateTime"] = effective
    performers, contained = [], []
    for n, person in enumerate(authorizing_persons(study), start=1):
        resource, ident = practitioner(person, options)
        if ident is None:
            resource["id"] = f"authorizing-{n}"
            contained.append(resource)
            performers.append({"reference": f"#authorizing-{n}"})
        else:
            url = full_url("Practitioner", "|".join(ident))
            entries.append(entry(resource, url, conditional_create("Practitioner", *ident)))
            performers.append({"reference": url})
    if contained:
        summary["contained"] = contained
    if performers:
        summary["performer"] = performers
    else:
        warnings.append("the report names no Irradiation Authorizing person; the summary does not meet the "
                        "IG's performer 1..1 (take it from the order or configuration)")
    if members:
        summary["hasMember"] = members
    if performers and effective:
        summary["meta"] = {"profile": [SUMMARY_PROFILE]}
    key = accumulation_key(study)
    entries.append(entry(summary, full_url("Observation", f"{ACCUMULATION_SYSTEM}|{key}"),
                         conditional_put("Observation", ACCUMULATION_SYSTEM, key)))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return MappingResult(
        kind=kind,
        bundle=bundle,
        warnings=tuple(dict.fromkeys(warnings)),
        study_instance_uid=ctx.study_instance_uid,
        sop_instance_uid=ctx.sop_instance_uid,
        patient_identifier=patient_key,
        summary_identifier=(ACCUMULATION_SYSTEM, key),
        event_uids=study.event_uids,
    )


def _events(study: DoseStudy):  # type: ignore[no-untyped-def]
    """(event record, components, Observation code, bodySite) for each event of the report."""
    for ct in study.ct_events:
        site = codeable_concept(ct.target_region) if ct.target_region is not None else None
        yield ct, ct_event_components(ct), c.IRRADIATION_EVENT, site or None
    for px in study.projection_events:
        site = None
        breast = breast_with_laterality(px.mammography.laterality) if px.mammography is not None else None
        if breast is not None:
            site = codeable_concept(breast)
        elif px.target_region is not None:
            site = codeable_concept(px.target_region)
        yield px, projection_event_components(px), c.IRRADIATION_EVENT, site or None
    for admin in study.administrations:
        yield admin, administration_components(admin), c.RADIOPHARMACEUTICAL_ADMINISTRATION, None
    if study.template is DoseReportTemplate.PATIENT:  # pragma: no cover - not mapped
        return
