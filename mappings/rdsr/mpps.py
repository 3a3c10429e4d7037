"""MPPS as a fallback dose source: a completed Modality Performed Procedure Step → one dose Observation.

Modalities that send no RDSR often still send MPPS (PS3.4 Annex F) with the Radiation Dose module
(PS3.3 C.4.16). Those attributes are step-level totals and are thin (several are retired in the
current dictionary; see hl7-dicom-integration.md §5.3), so DACS uses them only when the study has no
dose report: the Observation is coded like the IG's dose summary (LOINC 73569-6) so readers find it,
but it is keyed ``urn:dacs:mpps-dose|<MPPS SOP Instance UID>`` (never an RDSR's key) and its
``method`` is DCM 113858 "MPPS Content" (CID 10021 Source of Dose Information). Evaluation and
``$dose-summary`` recognise it by that identifier system and ignore it when the same study has an RDSR
summary (``fhir_server.evaluation.records.preferred_summaries``): no double counting.

Attributes read (tags and units checked against pydicom's dictionary and PS3.3 C.4.16):

* Total Time of Fluoroscopy (0040,0300) s → 113730 Total Fluoro Time;
* Total Number of Exposures (0040,0301) → 113812 Total Number of Irradiation Events;
* Image and Fluoroscopy Area Dose Product (0018,115E) dGy·cm² → 113722 Dose Area Product Total (mGy.cm2);
* Entrance Dose in mGy (0040,8302), else Entrance Dose (0040,0302, integer dGy, 0 = not measured) →
  111636 Entrance Exposure at RP (mGy), as :mod:`mappings.rdsr.image_header` does;
* Organ Dose (0040,0316) dGy with Organ Exposed (0040,0318) BREAST → 111637 Accumulated Average
  Glandular Dose (mGy); another organ → 113518 Organ Dose (mGy, organ in the text);
* Distance Source to Detector (0018,1110) mm → 113750; Distance Source to Entrance (0040,0306) mm and
  Exposed Area (0040,0303) mm have no DICOM concept and are coded by tag in :data:`DICOM_TAG_SYSTEM`;
* Exposure Dose Sequence (0040,030E) items: Radiation Mode (0018,115A) → 113732 Fluoro Mode, KVP → 113733,
  X-Ray Tube Current in µA (0018,8151) → 113734 (mA), Exposure Time (0018,1150) ms → 113824, Filter
  Type (0018,1160) → 113772, Filter Material (0018,7050) → 113757, Comments (0040,0310) → 121106;
* CTDIvol (0018,9345) mGy of CT Exposure Sequence (0018,9321) items → 113830 Mean CTDIvol (the MPPS
  module defines no CT dose; some CT vendors add this sequence, so it is read where present).

The Billing and Material Management module (C.4.17) carries no dose value; it is not mapped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from mappings.dicom_common import DICOM_UID_SYSTEM, issuer_system, uid_to_urn
from mappings.rdsr import codes as c
from mappings.rdsr.api import MappingResult
from mappings.rdsr.classify import DECODING_ERRORS, DatasetKind
from mappings.rdsr.errors import MalformedReportError, RdsrMappingError
from mappings.rdsr.fhir import (
    DCM,
    LOINC,
    OBSERVATION_CATEGORY,
    MappingOptions,
    concept,
    conditional_put,
    device_entry,
    entry,
    full_url,
    header_time,
    integer_component,
    patient_entry,
    quantity_component,
    string_component,
    v2_identifier_type,
)
from mappings.rdsr.header import parse_patient, text
from mappings.rdsr.records import Equipment, PatientInfo, StudyContext
from mappings.rdsr.units import DoseQuantity

__all__ = [
    "DICOM_TAG_SYSTEM",
    "MPPS_CONTENT",
    "MPPS_DOSE_SYSTEM",
    "MPPS_SOP_CLASS_UID",
    "MppsDose",
    "MppsExposure",
    "MppsNotCompletedError",
    "NoMppsDoseError",
    "map_mpps_dose",
    "merge_mpps",
    "parse_mpps_dose",
]

MPPS_DOSE_SYSTEM = "urn:dacs:mpps-dose"
"""Identifier system of the MPPS dose Observation (value: the MPPS SOP Instance UID)."""
DICOM_TAG_SYSTEM = "urn:dacs:dicom-tag"
"""Component codes for MPPS attributes that have no DICOM concept code (code: the tag, ``ggggeeee``)."""
MPPS_SOP_CLASS_UID = "1.2.840.10008.3.1.2.3.3"
MPPS_CONTENT = ("113858", "DCM")
"""DCM 113858 "MPPS Content" (CID 10021 Source of Dose Information): the Observation's ``method``."""
# CID 10004 fluoro modes for Radiation Mode (0018,115A) CONTINUOUS / PULSED
_RADIATION_MODES = {"CONTINUOUS": ("113630", "Continuous"), "PULSED": ("113631", "Pulsed")}


class MppsNotCompletedError(RdsrMappingError):
    """The performed procedure step is IN PROGRESS or DISCONTINUED: it gives no dose (yet)."""


class NoMppsDoseError(RdsrMappingError):
    """A completed step whose MPPS carries no Radiation Dose module value at all."""


@dataclass(frozen=True)
class MppsExposure:
    """One item of the Exposure Dose Sequence (0040,030E) or CT Exposure Sequence (0018,9321)."""

    radiation_mode: str | None = None
    kvp: DoseQuantity | None = None
    tube_current: DoseQuantity | None = None  # mA (sent in µA)
    exposure_time: DoseQuantity | None = None  # ms
    filter_type: str | None = None
    filter_material: str | None = None
    comments: str | None = None
    ctdivol: DoseQuantity | None = None


@dataclass(frozen=True)
class MppsDose:
    """The dose content of one completed MPPS (N-CREATE merged with its N-SETs), in FHIR units."""

    context: StudyContext
    patient: PatientInfo
    modality: str | None
    station_name: str | None
    station_ae_title: str | None
    start_date: str | None
    start_time: str | None
    end_date: str | None
    end_time: str | None
    description: str | None
    performed_series: tuple[tuple[str, str | None, tuple[tuple[str, str], ...]], ...]
    fluoro_time: DoseQuantity | None = None
    number_of_exposures: int | None = None
    dap_total: DoseQuantity | None = None
    entrance_dose: DoseQuantity | None = None
    organ_dose: DoseQuantity | None = None
    organ_exposed: str | None = None
    distance_source_to_detector: DoseQuantity | None = None
    distance_source_to_entrance: DoseQuantity | None = None
    exposed_area: tuple[int, ...] = ()
    comments: str | None = None
    exposures: tuple[MppsExposure, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def has_dose(self) -> bool:
        """Whether any dose value (not only technique factors) was sent."""
        return any(v is not None for v in (self.fluoro_time, self.dap_total, self.entrance_dose, self.organ_dose)) \
            or any(e.ctdivol is not None for e in self.exposures) or bool(self.number_of_exposures)


def merge_mpps(create: Dataset, updates: Sequence[Dataset]) -> Dataset:
    """The N-CREATE attribute list with each N-SET modification list applied in order.

    An N-SET replaces whole attributes (a sequence is replaced, not merged), so later values win
    element by element (PS3.7 10.1.1: the modification list gives the new values).
    """
    merged = Dataset()
    for source in (create, *updates):
        for elem in source.elements():  # raw elements stay raw: a bad value fails only where it is read
            merged[elem.tag] = elem
    return merged


def _number(ds: Dataset, keyword: str, warnings: list[str]) -> float | None:
    """A numeric attribute (first value when multi-valued); None and a warning when unreadable."""
    try:
        value = ds.get(keyword)
    except (TypeError, ValueError):  # an undecodable raw value (e.g. "12,5" as DS)
        warnings.append(f"{keyword} is not a readable number and is ignored")
        return None
    if value is None or value == "":
        return None
    if not isinstance(value, str | int | float) and hasattr(value, "__len__"):
        if not len(value):
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        warnings.append(f"{keyword} {value!r} is not a number and is ignored")
        return None
    if not math.isfinite(number):
        warnings.append(f"{keyword} is not finite and is ignored")
        return None
    return number


def _q(value: float | None, unit: str, to: str | None = None) -> DoseQuantity | None:
    if value is None:
        return None
    quantity = DoseQuantity(value, unit)
    return quantity.to(to) if to else quantity


def _exposure(item: Dataset, warnings: list[str]) -> MppsExposure:
    micro_amps = _number(item, "XRayTubeCurrentInuA", warnings)
    return MppsExposure(
        radiation_mode=(text(item, "RadiationMode") or "").upper() or None,
        kvp=_q(_number(item, "KVP", warnings), "kV"),
        tube_current=DoseQuantity(micro_amps / 1000, "mA") if micro_amps is not None else None,
        exposure_time=_q(_number(item, "ExposureTime", warnings), "ms"),
        filter_type=text(item, "FilterType"),
        filter_material=text(item, "FilterMaterial"),
        comments=text(item, "CommentsOnRadiationDose"),
        ctdivol=_q(_number(item, "CTDIvol", warnings), "mGy"),
    )


def _study_uid(ds: Dataset, warnings: list[str]) -> tuple[str, Dataset | None]:
    steps = list(ds.get("ScheduledStepAttributesSequence") or ())
    uids = [u for u in (text(s, "StudyInstanceUID") for s in steps) if u]
    if not uids:
        raise MalformedReportError("Study Instance UID (0020,000D) in the Scheduled Step Attributes Sequence "
                                   "(0040,0270) is missing: the MPPS cannot be tied to a study")
    if len(set(uids)) > 1:
        warnings.append(f"the Scheduled Step Attributes Sequence names {len(set(uids))} studies; the first, "
                        f"{uids[0]}, is used")
    step = next(s for s in steps if text(s, "StudyInstanceUID") == uids[0])
    return uids[0], step


def parse_mpps_dose(create: Dataset, updates: Sequence[Dataset] = (), *,
                    sop_instance_uid: str | None = None) -> MppsDose:
    """Parse the merged MPPS into :class:`MppsDose` (raises the errors :func:`map_mpps_dose` documents)."""
    ds = merge_mpps(create, updates)
    status = (text(ds, "PerformedProcedureStepStatus") or "").upper()
    uid = sop_instance_uid or text(ds, "SOPInstanceUID") or text(ds, "AffectedSOPInstanceUID")
    if uid is None and getattr(create, "file_meta", None) is not None:
        uid = text(create.file_meta, "MediaStorageSOPInstanceUID")
    if status != "COMPLETED":
        raise MppsNotCompletedError(f"MPPS {uid or '(no UID)'} is {status or 'without a status'}, not COMPLETED: "
                                    "a step gives dose only once it is completed")
    if not uid:
        raise MalformedReportError("the MPPS SOP Instance UID is unknown")
    warnings: list[str] = []
    organ_dose = _number(ds, "OrganDose", warnings)
    entrance = _q(_number(ds, "EntranceDoseInmGy", warnings), "mGy")
    entrance_dgy = _number(ds, "EntranceDose", warnings)
    if entrance is None and entrance_dgy:  # integer dGy; 0 means "not measured"
        entrance = _q(entrance_dgy, "dGy", "mGy")
        warnings.append("Entrance Dose (0040,0302) is an integer in dGy; prefer Entrance Dose in mGy when sent")
    exposures = [_exposure(i, warnings) for i in ds.get("ExposureDoseSequence") or ()]
    exposures += [_exposure(i, warnings) for i in ds.get("CTExposureSequence") or ()]
    area = ds.get("ExposedArea")
    exposed_area = () if area in (None, "") else (int(area),) if isinstance(area, int) else tuple(int(v) for v in area)
    fluoro = _number(ds, "TotalTimeOfFluoroscopy", warnings)
    count = _number(ds, "TotalNumberOfExposures", warnings)
    dap = _q(_number(ds, "ImageAndFluoroscopyAreaDoseProduct", warnings), "dGy.cm2", "mGy.cm2")
    if all(v is None for v in (fluoro, dap, entrance, organ_dose)) and not count \
            and all(e.ctdivol is None for e in exposures):
        # checked before the study: a completed step without dose is normal, not an error of the MPPS
        raise NoMppsDoseError(f"MPPS {uid} carries no Radiation Dose module value")
    study_uid, step = _study_uid(ds, warnings)
    series = []
    for item in ds.get("PerformedSeriesSequence") or ():
        series_uid = text(item, "SeriesInstanceUID")
        if not series_uid:
            continue
        refs = [(text(r, "ReferencedSOPInstanceUID"), text(r, "ReferencedSOPClassUID"))
                for key in ("ReferencedImageSequence", "ReferencedNonImageCompositeSOPInstanceSequence")
                for r in item.get(key) or ()]
        series.append((series_uid, text(item, "SeriesDescription"),
                       tuple((i, k) for i, k in refs if i and k)))
    context = StudyContext(
        study_instance_uid=study_uid, sop_instance_uid=uid, sop_class_uid=MPPS_SOP_CLASS_UID,
        accession_number=text(step, "AccessionNumber") if step is not None else None,
        accession_issuer_namespace=_accession_namespace(step),
        study_date=text(ds, "PerformedProcedureStepStartDate"), study_time=text(ds, "PerformedProcedureStepStartTime"),
        utc_offset=text(ds, "TimezoneOffsetFromUTC"),
    )
    return MppsDose(
        context=context,
        patient=parse_patient(ds),
        modality=text(ds, "Modality"),
        station_name=text(ds, "PerformedStationName"),
        station_ae_title=text(ds, "PerformedStationAETitle"),
        start_date=text(ds, "PerformedProcedureStepStartDate"),
        start_time=text(ds, "PerformedProcedureStepStartTime"),
        end_date=text(ds, "PerformedProcedureStepEndDate"),
        end_time=text(ds, "PerformedProcedureStepEndTime"),
        description=text(ds, "PerformedProcedureStepDescription"),
        performed_series=tuple(series),
        fluoro_time=_q(fluoro, "s"),
        number_of_exposures=int(count) if count is not None else None,
        dap_total=dap,
        entrance_dose=entrance,
        organ_dose=_q(organ_dose, "dGy", "mGy"),
        organ_exposed=(text(ds, "OrganExposed") or "").upper() or None,
        distance_source_to_detector=_q(_number(ds, "DistanceSourceToDetector", warnings), "mm"),
        distance_source_to_entrance=_q(_number(ds, "DistanceSourceToEntrance", warnings), "mm"),
        exposed_area=exposed_area,
        comments=text(ds, "CommentsOnRadiationDose"),
        exposures=tuple(exposures),
        warnings=tuple(warnings),
    )


def _accession_namespace(step: Dataset | None) -> str | None:
    seq = step.get("IssuerOfAccessionNumberSequence") if step is not None else None
    return text(seq[0], "LocalNamespaceEntityID") if seq else None


def map_mpps_dose(create: Dataset, updates: Sequence[Dataset] = (), options: MappingOptions | None = None, *,
                  sop_instance_uid: str | None = None) -> MappingResult:
    """A completed MPPS (N-CREATE attribute list + N-SET modification lists) → transaction Bundle.

    Patient (conditional create), ImagingStudy (conditional PUT by Study UID, merge-friendly), Device
    (the performing station) and one dose Observation keyed ``urn:dacs:mpps-dose|<MPPS UID>``. The UID
    is ``sop_instance_uid``, else the data set's SOP Instance UID, else the N-CREATE's Part 10 meta
    (the archived form).

    Raises
    ------
    MppsNotCompletedError
        The merged status is IN PROGRESS or DISCONTINUED.
    NoMppsDoseError
        The completed step carries no dose value.
    MalformedReportError
        No Study Instance UID in the Scheduled Step Attributes Sequence, or no MPPS UID.
    """
    try:
        return _emit(parse_mpps_dose(create, updates, sop_instance_uid=sop_instance_uid), options or MappingOptions())
    except RdsrMappingError:
        raise
    except DECODING_ERRORS as exc:
        raise MalformedReportError(f"MPPS cannot be read: {type(exc).__name__}: {exc}") from exc


def _tag_component(tag: str, keyword: str, quantity: DoseQuantity | None = None,
                   value: str | None = None) -> dict | None:
    if quantity is None and not value:
        return None
    comp: dict = {"code": {"coding": [{"system": DICOM_TAG_SYSTEM, "code": tag, "display": keyword}]}}
    if quantity is not None:
        comp["valueQuantity"] = quantity.fhir()
    else:
        comp["valueString"] = value
    return comp


def _text_concept_component(key: c.Key, value: str | None, label: str | None) -> dict | None:
    if not value:
        return None
    return {"code": concept(key, label), "valueCodeableConcept": {"text": value}}


def _labelled(display: str, label: str) -> str | None:
    return f"{display}{label}" if label else None


def _exposure_components(exposures: tuple[MppsExposure, ...]) -> list[dict | None]:
    comps: list[dict | None] = []
    many = len(exposures) > 1
    for n, exp in enumerate(exposures, start=1):
        label = f" (exposure {n})" if many else ""
        mode = _RADIATION_MODES.get(exp.radiation_mode or "")
        if mode is not None:
            comps.append({"code": concept(c.FLUORO_MODE, _labelled("Fluoro Mode", label)),
                          "valueCodeableConcept": {"coding": [{"system": DCM, "code": mode[0], "display": mode[1]}]}})
        elif exp.radiation_mode:
            comps.append(_text_concept_component(c.FLUORO_MODE, exp.radiation_mode, _labelled("Fluoro Mode", label)))
        comps += [
            quantity_component(c.MEAN_CTDIVOL, exp.ctdivol, _labelled("Mean CTDIvol", label)),
            quantity_component(c.KVP, exp.kvp, _labelled("KVP", label)),
            quantity_component(c.TUBE_CURRENT, exp.tube_current, _labelled("X-Ray Tube Current", label)),
            quantity_component(c.EXPOSURE_TIME, exp.exposure_time, _labelled("Exposure Time", label)),
            _text_concept_component(c.XRAY_FILTER_TYPE, exp.filter_type, _labelled("X-Ray Filter Type", label)),
            _text_concept_component(c.XRAY_FILTER_MATERIAL, exp.filter_material,
                                    _labelled("X-Ray Filter Material", label)),
        ]
        if exp.comments:
            comps.append({"code": concept(c.COMMENT, _labelled("Comment", label)), "valueString": exp.comments})
    return comps


def _components(dose: MppsDose) -> list[dict]:
    breast = dose.organ_exposed == "BREAST"
    comps: list[dict | None] = [
        integer_component(c.TOTAL_NUMBER_OF_IRRADIATION_EVENTS, dose.number_of_exposures),
        quantity_component(c.DAP_TOTAL, dose.dap_total),
        quantity_component(c.TOTAL_FLUORO_TIME, dose.fluoro_time),
        quantity_component(c.ENTRANCE_EXPOSURE_AT_RP, dose.entrance_dose),
        quantity_component(c.ACCUMULATED_AGD if breast else c.ORGAN_DOSE, dose.organ_dose,
                           None if breast or not dose.organ_exposed else f"Organ Dose ({dose.organ_exposed})"),
        quantity_component(c.DISTANCE_SOURCE_TO_DETECTOR, dose.distance_source_to_detector),
        _tag_component("00400306", "DistanceSourceToEntrance", dose.distance_source_to_entrance),
        _tag_component("00400303", "ExposedArea",
                       value="\\".join(str(v) for v in dose.exposed_area) + " mm" if dose.exposed_area else None),
        string_component(c.COMMENT, dose.comments),
        *_exposure_components(dose.exposures),
    ]
    return [comp for comp in comps if comp]


def _imaging_study(dose: MppsDose, patient_url: str, started: str | None, options: MappingOptions) -> dict:
    ctx = dose.context
    study_key = uid_to_urn(ctx.study_instance_uid)
    identifiers: list[dict] = [{"system": DICOM_UID_SYSTEM, "value": study_key}]
    if ctx.accession_number:
        system = issuer_system(ctx.accession_issuer_namespace, None, None, default=options.local_accession_system)
        identifiers.append({"use": "usual", "type": v2_identifier_type("ACSN"), "system": system,
                            "value": ctx.accession_number})
    resource: dict = {"resourceType": "ImagingStudy", "status": "available", "identifier": identifiers,
                      "subject": {"reference": patient_url}}
    if dose.modality:
        resource["modality"] = [{"system": DCM, "code": dose.modality}]
    if started:
        resource["started"] = started
    if dose.description:
        resource["description"] = dose.description
    series = []
    for uid, description, instances in dose.performed_series:
        item: dict = {"uid": uid, "modality": {"system": DCM, "code": dose.modality or "OT"}}
        if description:
            item["description"] = description
        if instances:
            item["instance"] = [{"uid": i, "sopClass": {"system": "urn:ietf:rfc:3986", "code": uid_to_urn(k)}}
                                for i, k in instances]
        series.append(item)
    if series:
        resource["series"] = series
    return entry(resource, full_url("ImagingStudy", study_key),
                 conditional_put("ImagingStudy", DICOM_UID_SYSTEM, study_key))


def _emit(dose: MppsDose, options: MappingOptions) -> MappingResult:
    warnings = list(dose.warnings)
    ctx = dose.context
    patient, patient_key = patient_entry(dose.patient, ctx, options, warnings)
    start = header_time(dose.start_date, dose.start_time, ctx, options)
    end = header_time(dose.end_date or dose.start_date, dose.end_time, ctx, options) if dose.end_time else None
    imaging = _imaging_study(dose, patient["fullUrl"], start, options)
    equipment = Equipment(station_name=dose.station_name or dose.station_ae_title)
    device = device_entry(equipment, dose.modality or "OT", options, warnings)
    key = ctx.sop_instance_uid
    study_ref = {"reference": imaging["fullUrl"]}
    observation: dict = {
        "resourceType": "Observation",
        "identifier": [{"system": MPPS_DOSE_SYSTEM, "value": key}],
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}],
        "code": {"coding": [{"system": LOINC, "code": "73569-6",
                             "display": "Radiation exposure and protection information [Description] Document "
                                        "Diagnostic imaging"}]},
        "method": {"coding": [{"system": DCM, "code": MPPS_CONTENT[0], "display": "MPPS Content"}],
                   "text": "dose copied from the Modality Performed Procedure Step (no dose report received)"},
        "subject": {"reference": patient["fullUrl"]},
        "partOf": [study_ref],
        "focus": [study_ref],
        "device": {"reference": device["fullUrl"]},
        "component": _components(dose),
    }
    if start and end:
        observation["effectivePeriod"] = {"start": start, "end": end}
    elif start:
        observation["effectiveDateTime"] = start
    else:
        warnings.append("the MPPS has no Performed Procedure Step Start Date/Time: the dose has no date")
    obs_entry = entry(observation, full_url("Observation", f"{MPPS_DOSE_SYSTEM}|{key}"),
                      conditional_put("Observation", MPPS_DOSE_SYSTEM, key))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [patient, imaging, device, obs_entry]}
    return MappingResult(kind=DatasetKind.NOT_A_DOSE_OBJECT, bundle=bundle, warnings=tuple(dict.fromkeys(warnings)),
                         study_instance_uid=ctx.study_instance_uid, sop_instance_uid=key,
                         patient_identifier=patient_key, summary_identifier=None, event_uids=frozenset())
