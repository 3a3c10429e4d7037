"""Legacy equipment without dose reports: a dose Observation from image header attributes.

Attributes and their units are those of hl7-dicom-integration.md §6 (checked against pydicom's
dictionary there): CTDIvol (0018,9345) mGy, Image and Fluoroscopy Area Dose Product (0018,115E) dGy·cm²,
Entrance Dose in mGy (0040,8302), Entrance Dose (0040,0302) dGy, Organ Dose (0040,0316) dGy with Organ
Exposed (0040,0318) = BREAST meaning average glandular dose, exposure index (0018,1411–1413), and the
technique factors. The Observation says how it was derived: ``method`` = DCM 113866 "Copied From Image
Attributes" (CID 10021).

Identity: one Observation per irradiation. Images that name their Irradiation Event UID (0008,3010)
are keyed by it; CT images without one by series and acquisition number (every slice of an
acquisition carries the same CTDIvol); other images by their SOP Instance UID. The key uses the system
``urn:dacs:image-header-dose`` so it never overwrites the richer Observation of an RDSR for the same event.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from mappings.dicom_common import DICOM_UID_SYSTEM, uid_to_urn
from mappings.rdsr import codes as c
from mappings.rdsr.api import MappingResult
from mappings.rdsr.classify import DECODING_ERRORS, IMAGE_SOP_CLASSES, DatasetKind, classify_dataset
from mappings.rdsr.errors import MalformedReportError, NoHeaderDoseError, NotADoseReportError, RdsrMappingError
from mappings.rdsr.fhir import (
    DCM,
    OBSERVATION_CATEGORY,
    MappingOptions,
    code_component,
    concept,
    conditional_put,
    device_entry,
    entry,
    full_url,
    header_time,
    patient_entry,
    quantity_component,
)
from mappings.rdsr.header import parse_equipment, parse_patient, parse_study_context, text
from mappings.rdsr.reading import ValueReader
from mappings.rdsr.sr_tree import Code
from mappings.rdsr.units import DoseQuantity

HEADER_DOSE_SYSTEM = "urn:dacs:image-header-dose"


def _number(ds: Dataset, keyword: str, warnings: list[str]) -> float | None:
    """A numeric header attribute, tolerating invalid DS text (None and a warning when unreadable)."""
    if keyword not in ds:
        return None
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int | float) and hasattr(value, "__len__"):
        value = value[0] if len(value) else None  # multi-valued: the first value
        if value is None:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        warnings.append(f"{keyword} {value!r} is not a number and is ignored")
        return None
    if number != number or number in (float("inf"), float("-inf")):
        warnings.append(f"{keyword} is not finite and is ignored")
        return None
    return number


def _ct_exposure(ds: Dataset) -> Dataset | None:
    """The CT Exposure functional group of an Enhanced CT image (shared groups), when present."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and "CTExposureSequence" in shared[0] and shared[0].CTExposureSequence:
        return shared[0].CTExposureSequence[0]
    return None


def _q(value: float | None, ucum: str, factor: float = 1.0) -> DoseQuantity | None:
    return DoseQuantity(value * factor, ucum) if value is not None else None


def map_image_header_dose(ds: Dataset, options: MappingOptions | None = None) -> MappingResult:
    """A dose Observation (plus Patient, ImagingStudy, Device) from an image's header attributes.

    Raises :class:`NoHeaderDoseError` when the image carries no dose attribute, and other
    :class:`RdsrMappingError` subclasses when it is not an image or lacks its UIDs.
    """
    try:
        return _map(ds, options or MappingOptions())
    except RdsrMappingError:
        raise
    except DECODING_ERRORS as exc:
        raise MalformedReportError(f"image header cannot be read: {type(exc).__name__}: {exc}") from exc


def _map(ds: Dataset, options: MappingOptions) -> MappingResult:
    kind = classify_dataset(ds)
    if kind is not DatasetKind.IMAGE_HEADER_DOSE:
        raise NotADoseReportError(f"not an image DACS reads header dose from ({kind.value})")
    warnings: list[str] = []
    ctx = parse_study_context(ds)
    modality = text(ds, "Modality") or IMAGE_SOP_CLASSES[ctx.sop_class_uid]
    exposure = _ct_exposure(ds)
    ctdivol = _number(ds, "CTDIvol", warnings)
    if ctdivol is None and exposure is not None:
        ctdivol = _number(exposure, "CTDIvol", warnings)
    dap = _number(ds, "ImageAndFluoroscopyAreaDoseProduct", warnings)
    entrance_mgy = _number(ds, "EntranceDoseInmGy", warnings)
    entrance_dgy = _number(ds, "EntranceDose", warnings)
    organ_dose = _number(ds, "OrganDose", warnings)
    exposure_index = _number(ds, "ExposureIndex", warnings)
    organ = (text(ds, "OrganExposed") or "").upper()
    entrance = _q(entrance_mgy, "mGy")
    if entrance is None and entrance_dgy:  # integer dGy, often 0 meaning "not measured"
        entrance = _q(entrance_dgy, "mGy", 100)
        warnings.append("Entrance Dose (0040,0302) is an integer in dGy; prefer Entrance Dose in mGy when sent")
    if not any(v for v in (ctdivol, dap, entrance, organ_dose, exposure_index)):
        raise NoHeaderDoseError(f"{modality} image {ctx.sop_instance_uid} has no dose attribute in its header")

    components = [
        quantity_component(c.MEAN_CTDIVOL, _q(ctdivol, "mGy")),
        code_component(c.CTDIW_PHANTOM_TYPE, _phantom(ds)),
        quantity_component(c.DAP, _q(dap, "mGy.cm2", 100)),  # (0018,115E) is in dGy.cm2
        quantity_component(c.ENTRANCE_EXPOSURE_AT_RP, entrance),
        quantity_component(c.AVERAGE_GLANDULAR_DOSE if organ == "BREAST" else c.ORGAN_DOSE,
                           _q(organ_dose, "mGy", 100)),  # (0040,0316) is in dGy
        quantity_component(c.KVP, _q(_number(ds, "KVP", warnings), "kV")),
        quantity_component(c.TUBE_CURRENT, _q(_number(ds, "XRayTubeCurrent", warnings), "mA")),
        quantity_component(c.EXPOSURE_TIME, _q(_number(ds, "ExposureTime", warnings), "ms")),
        quantity_component(c.EXPOSURE, _q(_number(ds, "Exposure", warnings), "mA.s")),
        quantity_component(c.EXPOSURE_INDEX, _q(exposure_index, "1")),
        quantity_component(c.TARGET_EXPOSURE_INDEX, _q(_number(ds, "TargetExposureIndex", warnings), "1")),
        quantity_component(c.DEVIATION_INDEX, _q(_number(ds, "DeviationIndex", warnings), "1")),
        quantity_component(c.COMPRESSION_THICKNESS, _q(_number(ds, "BodyPartThickness", warnings), "mm")
                           if modality == "MG" else None),
        quantity_component(c.COMPRESSION_FORCE, _q(_number(ds, "CompressionForce", warnings), "N")),
        quantity_component(c.PITCH_FACTOR, _q(_number(ds, "SpiralPitchFactor", warnings), "{ratio}")),
    ]
    components = [comp for comp in components if comp]

    patient, patient_key = patient_entry(parse_patient(ds), ctx, options, warnings)
    equipment = parse_equipment(ds, (), ValueReader(), ctx.study_instance_uid)
    device = device_entry(equipment, modality, options, warnings)
    started = header_time(ctx.study_date, ctx.study_time, ctx, options)
    effective = (header_time(text(ds, "AcquisitionDate"), text(ds, "AcquisitionTime"), ctx, options)
                 or header_time(ctx.series_date, ctx.series_time, ctx, options)
                 or header_time(ctx.content_date, ctx.content_time, ctx, options) or started)
    study_key = uid_to_urn(ctx.study_instance_uid)
    imaging: dict = {"resourceType": "ImagingStudy", "status": "available",
                     "identifier": [{"system": DICOM_UID_SYSTEM, "value": study_key}],
                     "modality": [{"system": DCM, "code": modality}],
                     "subject": {"reference": patient["fullUrl"]}}
    if started:
        imaging["started"] = started
    if ctx.series_instance_uid:
        imaging["series"] = [{"uid": ctx.series_instance_uid, "modality": {"system": DCM, "code": modality},
                              "instance": [{"uid": ctx.sop_instance_uid, "sopClass": {
                                  "system": "urn:ietf:rfc:3986", "code": uid_to_urn(ctx.sop_class_uid)}}]}]
    imaging_entry = entry(imaging, full_url("ImagingStudy", study_key),
                          conditional_put("ImagingStudy", DICOM_UID_SYSTEM, study_key))

    event_uid = text(ds, "IrradiationEventUID")
    event_uid = event_uid.split("\\")[0] if event_uid else None
    acquisition = text(ds, "AcquisitionNumber")
    if event_uid:
        key = uid_to_urn(event_uid)
    elif modality == "CT" and ctx.series_instance_uid:
        key = f"{uid_to_urn(ctx.series_instance_uid)}/acquisition/{acquisition or 'none'}"
    else:
        key = uid_to_urn(ctx.sop_instance_uid)
    observation: dict = {
        "resourceType": "Observation",
        "identifier": [{"system": HEADER_DOSE_SYSTEM, "value": key}],
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}],
        "code": concept(c.IRRADIATION_EVENT),
        "method": {**concept(c.COPIED_FROM_IMAGE_ATTRIBUTES),
                   "text": "dose copied from image header attributes (no dose report received)"},
        "subject": {"reference": patient["fullUrl"]},
        "partOf": [{"reference": imaging_entry["fullUrl"]}],
        "device": {"reference": device["fullUrl"]},
        "component": components,
    }
    if effective:
        observation["effectiveDateTime"] = effective
    laterality = (text(ds, "ImageLaterality") or text(ds, "Laterality") or "").upper()
    site = {"L": ("80248007", "Left breast"), "R": ("73056007", "Right breast"), "B": ("63762007", "Both breasts")}
    if modality == "MG" and laterality in site:
        code, display = site[laterality]
        observation["bodySite"] = {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}
    obs_entry = entry(observation, full_url("Observation", f"{HEADER_DOSE_SYSTEM}|{key}"),
                      conditional_put("Observation", HEADER_DOSE_SYSTEM, key))
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [patient, imaging_entry, device, obs_entry]}
    return MappingResult(kind=kind, bundle=bundle, warnings=tuple(dict.fromkeys(warnings)),
                         study_instance_uid=ctx.study_instance_uid, sop_instance_uid=ctx.sop_instance_uid,
                         patient_identifier=patient_key, summary_identifier=None,
                         event_uids=frozenset({event_uid}) if event_uid else frozenset())


def _phantom(ds: Dataset) -> Code | None:
    seq = ds.get("CTDIPhantomTypeCodeSequence")
    if not seq:
        return None
    item = seq[0]
    return Code(str(item.get("CodeValue") or ""), str(item.get("CodingSchemeDesignator") or ""),
                str(item.get("CodeMeaning") or ""))
