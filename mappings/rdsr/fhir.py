"""Emit FHIR R4 resources for a :class:`DoseStudy`, following the HL7 *Radiation Dose Summary for
Diagnostic Procedures on FHIR* IG (1.0.0, STU1) where it speaks, and its 2022 ballot for per-event data.

Everything is plain JSON-ready dicts. Entries of the transaction Bundle are made idempotent by
conditional requests (see :mod:`mappings.rdsr.api` for the contract with the server).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from mappings.dicom_common import (
    DICOM_UID_SYSTEM,
    LOCAL_ISSUER_SYSTEM,
    administrative_gender,
    dicom_date_to_fhir,
    dicom_datetime_to_fhir,
    identifier_query,
    issuer_system,
    person_name_to_fhir,
    uid_to_urn,
)
from mappings.rdsr import codes as c
from mappings.rdsr.codes import codeable_concept
from mappings.rdsr.records import (
    CtIrradiationEvent,
    DoseReportTemplate,
    DoseStudy,
    Equipment,
    PatientInfo,
    PersonParticipant,
    ProjectionAccumulation,
    ProjectionIrradiationEvent,
    RadiopharmaceuticalAdministration,
    StudyContext,
)
from mappings.rdsr.sr_tree import Code
from mappings.rdsr.synthetic import stable_uuid
from mappings.rdsr.units import DoseQuantity

IG = "http://hl7.org/fhir/uv/radiation-dose-summary"
SUMMARY_PROFILE = f"{IG}/StructureDefinition/radiation-dose-summary"
DEVICE_PROFILE = f"{IG}/StructureDefinition/modality-device"
IG_IDENTIFIER_TYPES = f"{IG}/CodeSystem/dicom-identifier-type"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"

ACCUMULATION_SYSTEM = "urn:dacs:dose-accumulation"
"""Identifier system of the summary Observation's accumulation key (see :func:`accumulation_key`)."""
PLACEHOLDER_PATIENT_SYSTEM = "urn:dacs:placeholder-patient"
"""Identifier system of the study-scoped Patient made when a report has no Patient ID."""
DEVICE_SERIAL_SYSTEM_PREFIX = "urn:dacs:device-serial:"
DEVICE_NAME_SYSTEM_PREFIX = "urn:dacs:device-name:"
AE_TITLE_SYSTEM = "urn:dacs:dicom-ae-title"
LATERALITY_EXTENSION = "urn:dacs:fhir:StructureDefinition:laterality"
"""Extension on a summary component: the breast an accumulated AGD belongs to (the IG has no slot)."""
DACS_TAGS = "urn:dacs:tags"

_DISPLAY = {
    "73569-6": "Radiation exposure and protection information [Description] Document Diagnostic imaging",
    "121058": "Procedure reported", "113812": "Total Number of Irradiation Events",
    "113813": "CT Dose Length Product Total", "113814": "CT Effective Dose Total",
    "113722": "Dose Area Product Total", "113725": "Dose (RP) Total", "113726": "Fluoro Dose Area Product Total",
    "113728": "Fluoro Dose (RP) Total", "113730": "Total Fluoro Time", "113727": "Acquisition Dose Area Product Total",
    "113729": "Acquisition Dose (RP) Total", "113855": "Total Acquisition Time",
    "113731": "Total Number of Radiographic Frames", "111637": "Accumulated Average Glandular Dose",
    "113507": "Administered activity", "349358000": "Radiopharmaceutical agent", "89457008": "Radionuclide",
    "123005": "Radiopharmaceutical Volume", "410675002": "Route of administration", "113839": "Effective Dose",
    "113852": "Irradiation Event", "113502": "Radiopharmaceutical Administration",
    "113830": "Mean CTDIvol", "113838": "DLP", "113835": "CTDIw Phantom Type", "113820": "CT Acquisition Type",
    "113825": "Scanning Length", "113824": "Exposure Time", "113828": "Pitch Factor",
    "113826": "Nominal Single Collimation Width", "113827": "Nominal Total Collimation Width",
    "113823": "Number of X-Ray Sources", "113733": "KVP", "113734": "X-Ray Tube Current",
    "113833": "Maximum X-Ray Tube Current", "113834": "Exposure Time per Rotation",
    "113930": "Size Specific Dose Estimate",
    "125203": "Acquisition Protocol", "408730004": "Procedure Context",
    "113901": "DLP Alert Value Configured", "113902": "CTDIvol Alert Value Configured", "113903": "DLP Alert Value",
    "113904": "CTDIvol Alert Value", "113905": "Accumulated DLP Forward Estimate",
    "113906": "Accumulated CTDIvol Forward Estimate", "113907": "Reason for Proceeding",
    "113909": "DLP Notification Value Configured", "113910": "CTDIvol Notification Value Configured",
    "113911": "DLP Notification Value", "113912": "CTDIvol Notification Value", "113913": "DLP Forward Estimate",
    "113914": "CTDIvol Forward Estimate", "113870": "Person Name",
    "122130": "Dose Area Product", "113738": "Dose (RP)", "111636": "Entrance Exposure at RP",
    "113721": "Irradiation Event Type", "113764": "Acquisition Plane", "113791": "Pulse Rate",
    "113768": "Number of Pulses", "113793": "Pulse Width", "113742": "Irradiation Duration",
    "113736": "Exposure", "113767": "Average X-Ray Tube Current", "112011": "Positioner Primary Angle",
    "112012": "Positioner Secondary Angle", "113757": "X-Ray Filter Material",
    "113758": "X-Ray Filter Thickness Minimum", "113773": "X-Ray Filter Thickness Maximum",
    "113772": "X-Ray Filter Type", "113732": "Fluoro Mode", "113780": "Reference Point Definition",
    "113845": "Exposure Index", "113846": "Target Exposure Index", "113847": "Deviation Index",
    "111634": "Half Value Layer", "113750": "Distance Source to Detector",
    "113737": "Distance Source to Reference Point",
    "113790": "Collimated Field Area", "113766": "Focal Spot Size", "111631": "Average Glandular Dose",
    "111633": "Compression Thickness", "111647": "Compression Force", "111031": "Image View",
    "111632": "Anode Target Material", "113508": "Pre-Administration Measured Activity",
    "113509": "Post-Administration Measured Activity", "123003": "Radiopharmaceutical Start DateTime",
    "113518": "Organ Dose", "113866": "Copied From Image Attributes",
}
_SYSTEMS = {"DCM": DCM, "SCT": SCT, "LN": LOINC}


@dataclass(frozen=True)
class MappingOptions:
    """Site settings the mapping needs and the dataset cannot give.

    ``timezone``: IANA zone of the modalities' clocks, for DICOM times that carry no UTC offset (FHIR
    needs one). ``calling_ae_title``: the sending AE title, which the IG's ModalityDevice requires and
    the RDSR does not contain. ``local_patient_id_system`` / ``local_accession_system``: the systems of
    IDs that come without an issuer (see :func:`mappings.dicom_common.issuer_system`).
    """

    timezone: str = "UTC"
    calling_ae_title: str | None = None
    local_patient_id_system: str = LOCAL_ISSUER_SYSTEM
    local_accession_system: str = LOCAL_ISSUER_SYSTEM


def coding(key: c.Key, display: str | None = None) -> dict:
    value, scheme = key
    out = {"system": _SYSTEMS[scheme], "code": value}
    shown = display or _DISPLAY.get(value)
    if shown:
        out["display"] = shown
    return out


def concept(key: c.Key, text: str | None = None) -> dict:
    out: dict = {"coding": [coding(key)]}
    if text:
        out["text"] = text
    return out


def ig_identifier_type(code: str) -> dict:
    return {"coding": [{"system": IG_IDENTIFIER_TYPES, "code": code}]}


def v2_identifier_type(code: str) -> dict:
    return {"coding": [{"system": V2_0203, "code": code}]}


def uid_identifier(uid: str, ig_type: str | None = None) -> dict:
    ident: dict = {"system": DICOM_UID_SYSTEM, "value": uid_to_urn(uid)}
    if ig_type:
        ident["type"] = ig_identifier_type(ig_type)
    return ident


def full_url(resource_type: str, key: str) -> str:
    """``urn:uuid:`` fullUrl from a stable key: the same input always yields the same Bundle."""
    return f"urn:uuid:{stable_uuid(resource_type, key)}"


def entry(resource: dict, url: str, request: dict) -> dict:
    return {"fullUrl": url, "resource": resource, "request": request}


def conditional_put(resource_type: str, system: str, value: str) -> dict:
    return {"method": "PUT", "url": f"{resource_type}?{identifier_query(system, value)}"}


def conditional_create(resource_type: str, system: str, value: str) -> dict:
    return {"method": "POST", "url": resource_type, "ifNoneExist": identifier_query(system, value)}


def fhir_time(value: str | None, context: StudyContext, options: MappingOptions) -> str | None:
    return dicom_datetime_to_fhir(value, utc_offset=context.utc_offset, zone=options.timezone) if value else None


def header_time(date: str | None, time: str | None, context: StudyContext, options: MappingOptions) -> str | None:
    return dicom_datetime_to_fhir(date=date, time=time, utc_offset=context.utc_offset, zone=options.timezone)


# --- Patient ----------------------------------------------------------------------------------------------

def patient_entry(patient: PatientInfo, context: StudyContext, options: MappingOptions,
                  warnings: list[str]) -> tuple[dict, tuple[str, str]]:
    """Patient matched or created by Patient ID and issuer (conditional create).

    Without a Patient ID the report still needs a subject: a placeholder Patient scoped to the study
    (identifier ``urn:dacs:placeholder-patient|urn:oid:<study uid>``), tagged so it can be merged once
    the RIS tells who it is.
    """
    resource: dict = {"resourceType": "Patient"}
    if patient.patient_id:
        system = issuer_system(patient.issuer_namespace, patient.issuer_universal_id,
                               patient.issuer_universal_id_type, default=options.local_patient_id_system)
        value = patient.patient_id
        resource["identifier"] = [{"use": "usual", "type": v2_identifier_type("MR"), "system": system, "value": value}]
        name = person_name_to_fhir(patient.name)
        if name:
            resource["name"] = [name]
        gender = administrative_gender(patient.sex)
        if gender:
            resource["gender"] = gender
        birth = dicom_date_to_fhir(patient.birth_date)
        if birth:
            resource["birthDate"] = birth
    else:
        system, value = PLACEHOLDER_PATIENT_SYSTEM, uid_to_urn(context.study_instance_uid)
        warnings.append("Patient ID (0010,0020) is empty: the dose is attached to a placeholder Patient for "
                        "this study until the patient is identified")
        resource["identifier"] = [{"use": "temp", "system": system, "value": value}]
        resource["meta"] = {"tag": [{"system": DACS_TAGS, "code": "placeholder-patient",
                                     "display": "Patient ID missing in the dose report"}]}
        name = person_name_to_fhir(patient.name)
        if name:
            resource["name"] = [name]
    url = full_url("Patient", f"{system}|{value}")
    return entry(resource, url, conditional_create("Patient", system, value)), (system, value)


# --- Device (ModalityDevice) --------------------------------------------------------------------------------

def device_key(equipment: Equipment) -> tuple[str, str]:
    """(system, value) DACS identifies a modality by: Device Observer UID, else Device UID, else serial
    number within manufacturer and model, else station/manufacturer/model names."""
    if equipment.observer_uid:
        return DICOM_UID_SYSTEM, uid_to_urn(equipment.observer_uid)
    if equipment.device_uid:
        return DICOM_UID_SYSTEM, uid_to_urn(equipment.device_uid)
    maker = quote(f"{equipment.manufacturer or ''}/{equipment.model or ''}", safe="")
    if equipment.serial_number:
        return DEVICE_SERIAL_SYSTEM_PREFIX + maker, equipment.serial_number
    return DEVICE_NAME_SYSTEM_PREFIX + maker, equipment.station_name or equipment.observer_name or "unknown"


def device_entry(equipment: Equipment, modality: str, options: MappingOptions, warnings: list[str]) -> dict:
    """The IG's ModalityDevice for the irradiating equipment (conditional update by :func:`device_key`)."""
    identifiers: list[dict] = []
    if equipment.observer_uid:
        identifiers.append({"type": {"coding": [coding(c.DEVICE_OBSERVER_UID, "Device Observer UID")]},
                            "system": DICOM_UID_SYSTEM, "value": uid_to_urn(equipment.observer_uid)})
    if equipment.device_uid:
        identifiers.append(uid_identifier(equipment.device_uid, "device-uid"))
    system, value = device_key(equipment)
    if equipment.serial_number:
        serial_system = DEVICE_SERIAL_SYSTEM_PREFIX + quote(f"{equipment.manufacturer or ''}/{equipment.model or ''}",
                                                            safe="")
        identifiers.append({"type": v2_identifier_type("SNO"), "system": serial_system,
                            "value": equipment.serial_number})
    if not any(i["system"] == system and i["value"] == value for i in identifiers):
        identifiers.append({"system": system, "value": value})
        warnings.append("the modality has no Device Observer UID, Device UID or serial number; it is identified "
                        "by its names only")
    resource: dict = {"resourceType": "Device", "identifier": identifiers,
                      "type": {"coding": [{"system": DCM, "code": modality}]}}
    if options.calling_ae_title:
        identifiers.append({"type": ig_identifier_type("application-entity"), "system": AE_TITLE_SYSTEM,
                            "value": options.calling_ae_title})
        resource["meta"] = {"profile": [DEVICE_PROFILE]}
    if equipment.manufacturer:
        resource["manufacturer"] = equipment.manufacturer
    if equipment.serial_number:
        resource["serialNumber"] = equipment.serial_number
    if equipment.model:
        resource["modelNumber"] = equipment.model
    names = [{"name": n, "type": t} for n, t in ((equipment.manufacturer, "manufacturer-name"),
                                                  (equipment.model, "model-name"),
                                                  (equipment.station_name, "user-friendly-name")) if n]
    if names:
        resource["deviceName"] = names
    if equipment.software_versions:
        resource["version"] = [{"value": v} for v in equipment.software_versions]
    return entry(resource, full_url("Device", f"{system}|{value}"), conditional_put("Device", system, value))


def modality_of(study: DoseStudy) -> str:
    """DICOM CID 33 modality of the irradiating equipment, from the template and its content.

    Projection reports: mammography → MG; any fluoroscopy event, fluoro total or a fluoroscopy-guided
    acquisition device type → RF (Philips Azurion reports "Integrated" while it is fluoroscopic, so
    content wins); otherwise DX.
    """
    if study.template is DoseReportTemplate.CT:
        return "CT"
    if study.template is DoseReportTemplate.RADIOPHARMACEUTICAL:
        return "NM"
    if study.is_mammography:
        return "MG"
    fluoro = any(e.is_fluoroscopy for e in study.projection_events) or any(
        (a.total_fluoro_time is not None and a.total_fluoro_time.value > 0)
        or (a.fluoro_dap_total is not None and a.fluoro_dap_total.value > 0)
        for a in study.projection_accumulations)
    if fluoro or (study.acquisition_device_type is not None
                  and study.acquisition_device_type.key == c.FLUOROSCOPY_GUIDED_SYSTEM):
        return "RF"
    return "DX"


# --- Practitioner -----------------------------------------------------------------------------------------

def practitioner(person: PersonParticipant, options: MappingOptions) -> tuple[dict, tuple[str, str] | None]:
    """A Practitioner resource and, when the report gives a Person ID, its (system, value)."""
    resource: dict = {"resourceType": "Practitioner"}
    name = person_name_to_fhir(person.name)
    if name:
        resource["name"] = [name]
    if person.person_id:
        system = issuer_system(person.person_id_issuer, default=LOCAL_ISSUER_SYSTEM)
        resource["identifier"] = [{"system": system, "value": person.person_id}]
        return resource, (system, person.person_id)
    return resource, None


def authorizing_persons(study: DoseStudy) -> list[PersonParticipant]:
    """Distinct TID 1020 persons with role Irradiation Authorizing (113850), from the document level and
    from CT dose-check details (Toshiba names the person who proceeded there)."""
    found: dict[tuple[str, str | None], PersonParticipant] = {}
    candidates = list(study.persons)
    for event in study.ct_events:
        candidates.extend(check.person for check in event.dose_checks if check.person is not None)
    for person in candidates:
        if person.role is not None and person.role.key == c.IRRADIATION_AUTHORIZING:
            found.setdefault((person.name, person.person_id), person)
    return list(found.values())


# --- components -------------------------------------------------------------------------------------------

def quantity_component(key: c.Key, quantity: DoseQuantity | None, text: str | None = None) -> dict | None:
    if quantity is None:
        return None
    return {"code": concept(key, text), "valueQuantity": quantity.fhir()}


def code_component(key: c.Key, value: Code | None, text: str | None = None) -> dict | None:
    if value is None:
        return None
    cc = codeable_concept(value)
    if not cc:
        return None
    return {"code": concept(key, text), "valueCodeableConcept": cc}


def string_component(key: c.Key, value: str | None) -> dict | None:
    return {"code": concept(key), "valueString": value} if value else None


def integer_component(key: c.Key, value: int | None) -> dict | None:
    return {"code": concept(key), "valueInteger": int(value)} if value is not None else None


def bool_component(key: c.Key, value: bool | None) -> dict | None:
    return {"code": concept(key), "valueBoolean": value} if value is not None else None


def _present(components: Iterable[dict | None]) -> list[dict]:
    return [comp for comp in components if comp]


def _mean(values: tuple[float, ...]) -> float | None:
    """Mean of the non-zero values: per-pulse kVp/mA lists start with a 0 pulse on some units."""
    nonzero = [v for v in values if v != 0]
    if not values:
        return None
    return sum(nonzero) / len(nonzero) if nonzero else 0.0


def _sum(values: Iterable[DoseQuantity | None]) -> DoseQuantity | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    total = present[0]
    for value in present[1:]:
        total = total + value
    return total


def ct_event_components(event: CtIrradiationEvent) -> list[dict]:
    """TID 10013 items as components (codes from the IG's 2022 ballot CT irradiation event profile, plus
    the acquisition parameters and TID 10015 dose check details)."""
    many = len(event.sources) > 1
    comps: list[dict | None] = [
        quantity_component(c.MEAN_CTDIVOL, event.mean_ctdivol),
        quantity_component(c.DLP, event.dlp),
        code_component(c.CTDIW_PHANTOM_TYPE, event.phantom),
        code_component(c.CT_ACQUISITION_TYPE, event.acquisition_type),
        string_component(c.ACQUISITION_PROTOCOL, event.protocol),
        code_component(c.PROCEDURE_CONTEXT, event.procedure_context),
        quantity_component(c.SCANNING_LENGTH, event.scanning_length),
        quantity_component(c.EXPOSURE_TIME, event.exposure_time),
        quantity_component(c.NOMINAL_SINGLE_COLLIMATION, event.nominal_single_collimation),
        quantity_component(c.NOMINAL_TOTAL_COLLIMATION, event.nominal_total_collimation),
        quantity_component(c.PITCH_FACTOR, DoseQuantity(event.pitch_factor, "{ratio}")
                           if event.pitch_factor is not None else None),
        integer_component(c.NUMBER_OF_XRAY_SOURCES, event.number_of_sources),
        quantity_component(c.SSDE, event.ssde),
        quantity_component(c.EFFECTIVE_DOSE, event.effective_dose),
    ]
    for source in event.sources:
        label = f" (X-ray source {source.identification})" if many and source.identification else None
        comps += [
            quantity_component(c.KVP, source.kvp, _DISPLAY["113733"] + label if label else None),
            quantity_component(c.TUBE_CURRENT, source.tube_current, _DISPLAY["113734"] + label if label else None),
            quantity_component(c.MAXIMUM_TUBE_CURRENT, source.maximum_tube_current,
                               _DISPLAY["113833"] + label if label else None),
            quantity_component(c.EXPOSURE_TIME_PER_ROTATION, source.exposure_time_per_rotation,
                               _DISPLAY["113834"] + label if label else None),
        ]
    for check in event.dose_checks:
        codes = c.DOSE_CHECK[check.kind]
        comps += [bool_component(codes.dlp_configured, check.dlp_value_configured),
                  bool_component(codes.ctdivol_configured, check.ctdivol_value_configured),
                  quantity_component(codes.dlp_value, check.dlp_value),
                  quantity_component(codes.ctdivol_value, check.ctdivol_value),
                  quantity_component(codes.dlp_forward_estimate, check.dlp_forward_estimate),
                  quantity_component(codes.ctdivol_forward_estimate, check.ctdivol_forward_estimate)]
        comps.append(string_component(c.REASON_FOR_PROCEEDING, check.reason_for_proceeding))
        if check.person is not None:
            comps.append(string_component(c.PERSON_NAME, check.person.name))
    return _present(comps)


def projection_event_components(event: ProjectionIrradiationEvent) -> list[dict]:
    """TID 10003 items as components (2022 ballot codes 122130, 113738, 111636, 113721 plus source,
    detector and mechanical data). Per-pulse kVp/mA are given as the mean of the non-zero pulses."""
    kvp = _mean(event.kvp)
    current = _mean(event.tube_current)
    comps: list[dict | None] = [
        quantity_component(c.DAP, event.dap),
        quantity_component(c.DOSE_RP, event.dose_rp),
        quantity_component(c.ENTRANCE_EXPOSURE_AT_RP, event.entrance_exposure_at_rp),
        code_component(c.IRRADIATION_EVENT_TYPE, event.event_type),
        code_component(c.ACQUISITION_PLANE, event.plane),
        string_component(c.ACQUISITION_PROTOCOL, event.protocol),
        string_component(c.REFERENCE_POINT_DEFINITION, event.reference_point),
        quantity_component(c.KVP, DoseQuantity(kvp, "kV") if kvp is not None else None),
        quantity_component(c.TUBE_CURRENT, DoseQuantity(current, "mA") if current is not None else None),
        quantity_component(c.AVERAGE_TUBE_CURRENT, event.average_tube_current),
        code_component(c.FLUORO_MODE, event.fluoro_mode),
        quantity_component(c.PULSE_RATE, event.pulse_rate),
        quantity_component(c.NUMBER_OF_PULSES, DoseQuantity(event.number_of_pulses, "{pulse}")
                           if event.number_of_pulses is not None else None),
        quantity_component(c.PULSE_WIDTH, event.pulse_width),
        quantity_component(c.IRRADIATION_DURATION, event.irradiation_duration),
        quantity_component(c.EXPOSURE_TIME, event.exposure_time),
        quantity_component(c.EXPOSURE, event.exposure),
        quantity_component(c.FOCAL_SPOT_SIZE, event.focal_spot_size),
        quantity_component(c.POSITIONER_PRIMARY_ANGLE, event.positioner_primary_angle),
        quantity_component(c.POSITIONER_SECONDARY_ANGLE, event.positioner_secondary_angle),
        quantity_component(c.COLLIMATED_FIELD_AREA, event.collimated_field_area),
        quantity_component(c.DISTANCE_SOURCE_TO_DETECTOR, event.distance_source_to_detector),
        quantity_component(c.DISTANCE_SOURCE_TO_RP, event.distance_source_to_rp),
        quantity_component(c.HALF_VALUE_LAYER, event.half_value_layer),
        quantity_component(c.EXPOSURE_INDEX, DoseQuantity(event.exposure_index, "1")
                           if event.exposure_index is not None else None),
        quantity_component(c.TARGET_EXPOSURE_INDEX, DoseQuantity(event.target_exposure_index, "1")
                           if event.target_exposure_index is not None else None),
        quantity_component(c.DEVIATION_INDEX, DoseQuantity(event.deviation_index, "1")
                           if event.deviation_index is not None else None),
    ]
    for n, xfilter in enumerate(event.filters, start=1):
        label = f" (filter {n})" if len(event.filters) > 1 else ""
        comps += [code_component(c.XRAY_FILTER_TYPE, xfilter.filter_type, _DISPLAY["113772"] + label),
                  code_component(c.XRAY_FILTER_MATERIAL, xfilter.material, _DISPLAY["113757"] + label),
                  quantity_component(c.XRAY_FILTER_THICKNESS_MIN, xfilter.thickness_minimum,
                                     _DISPLAY["113758"] + label),
                  quantity_component(c.XRAY_FILTER_THICKNESS_MAX, xfilter.thickness_maximum,
                                     _DISPLAY["113773"] + label)]
    mammo = event.mammography
    if mammo is not None:
        comps += [quantity_component(c.AVERAGE_GLANDULAR_DOSE, mammo.average_glandular_dose),
                  quantity_component(c.COMPRESSION_THICKNESS, mammo.compression_thickness),
                  quantity_component(c.COMPRESSION_FORCE, mammo.compression_force),
                  code_component(c.IMAGE_VIEW, mammo.view),
                  code_component(c.ANODE_TARGET_MATERIAL, mammo.anode_target_material)]
    return _present(comps)


def administration_components(admin: RadiopharmaceuticalAdministration) -> list[dict]:
    """TID 10022 items with the IG's NM summary component codes."""
    return _present([
        quantity_component(c.ADMINISTERED_ACTIVITY, admin.administered_activity),
        code_component(c.RADIOPHARMACEUTICAL_AGENT, admin.agent),
        code_component(c.RADIONUCLIDE, admin.radionuclide),
        quantity_component(c.RADIOPHARMACEUTICAL_VOLUME, admin.volume),
        code_component(c.ROUTE_OF_ADMINISTRATION, admin.route),
        quantity_component(c.EFFECTIVE_DOSE, admin.effective_dose),
    ])


def summary_components(study: DoseStudy, warnings: list[str]) -> list[dict]:
    """The IG's RadiationDoseSummary components: reported totals, summed over planes for projection X-ray."""
    proc = study.procedure_reported
    comps: list[dict | None] = [code_component(c.PROCEDURE_REPORTED, proc)] if proc is not None else []
    if study.template is DoseReportTemplate.CT:
        acc = study.ct_accumulation
        dlp_total = acc.dlp_total if acc is not None else None
        if dlp_total is None and any(e.dlp is not None for e in study.ct_events):
            dlp_total = _sum(e.dlp for e in study.ct_events)
            warnings.append("the report gives no CT Dose Length Product Total; the sum of the events' DLP is used")
        total_events = acc.total_events if acc is not None and acc.total_events is not None else len(study.ct_events)
        comps += [integer_component(c.TOTAL_NUMBER_OF_IRRADIATION_EVENTS, total_events),
                  quantity_component(c.CT_DLP_TOTAL, dlp_total),
                  quantity_component(c.CT_EFFECTIVE_DOSE_TOTAL, acc.effective_dose_total if acc else None)]
    elif study.template is DoseReportTemplate.PROJECTION:
        comps += projection_summary_components(study.projection_accumulations)
    else:
        for admin in study.administrations:
            comps += administration_components(admin)
    return _present(comps)


def projection_summary_components(accumulations: tuple[ProjectionAccumulation, ...]) -> list[dict]:
    def total(attr: str) -> DoseQuantity | None:
        return _sum(getattr(a, attr) for a in accumulations)

    frames = [a.total_radiographic_frames for a in accumulations if a.total_radiographic_frames is not None]
    comps: list[dict | None] = [
        quantity_component(c.DOSE_RP_TOTAL, total("dose_rp_total")),
        quantity_component(c.DAP_TOTAL, total("dap_total")),
        quantity_component(c.FLUORO_DAP_TOTAL, total("fluoro_dap_total")),
        quantity_component(c.FLUORO_DOSE_RP_TOTAL, total("fluoro_dose_rp_total")),
        quantity_component(c.TOTAL_FLUORO_TIME, total("total_fluoro_time")),
        quantity_component(c.ACQUISITION_DAP_TOTAL, total("acquisition_dap_total")),
        quantity_component(c.ACQUISITION_DOSE_RP_TOTAL, total("acquisition_dose_rp_total")),
        quantity_component(c.TOTAL_ACQUISITION_TIME, total("total_acquisition_time")),
        integer_component(c.TOTAL_NUMBER_OF_RADIOGRAPHIC_FRAMES, sum(frames) if frames else None),
    ]
    for acc in accumulations:
        for agd in acc.glandular_doses:
            side = agd.laterality.meaning if agd.laterality is not None and agd.laterality.meaning else None
            comp = quantity_component(c.ACCUMULATED_AGD, agd.dose,
                                      f"{_DISPLAY['111637']} ({side})" if side else None)
            if comp is not None and agd.laterality is not None:
                comp["extension"] = [{"url": LATERALITY_EXTENSION,
                                      "valueCodeableConcept": codeable_concept(agd.laterality)}]
            comps.append(comp)
    return _present(comps)


def summary_text(study: DoseStudy, components: list[dict]) -> str:
    """The human-readable valueString the IG requires (its template is site-defined)."""
    kind = {"CT": "CT", "RF": "Fluoroscopy", "DX": "Radiography", "MG": "Mammography", "NM": "Radiopharmaceutical"}
    parts = [kind.get(modality_of(study), "X-ray") + " dose report"]
    count = len(study.event_uids_in_order)
    noun = "administration" if study.template is DoseReportTemplate.RADIOPHARMACEUTICAL else "irradiation event"
    parts.append(f"{count} {noun}{'s' if count != 1 else ''}")
    for comp in components:
        q = comp.get("valueQuantity")
        if q is not None:
            name = comp["code"].get("text") or comp["code"]["coding"][0].get("display", "")
            parts.append(f"{name} {q['value']:g} {q['unit']}")
        cc = comp.get("valueCodeableConcept")
        code0 = comp["code"]["coding"][0]["code"]
        if cc is not None and code0 in ("349358000", "89457008"):
            parts.append(cc.get("text") or "")
    return "; ".join(p for p in parts if p)
