"""Header attributes (Patient, General Study/Series, General Equipment, SOP Common) and the document-level
items every dose report template shares (TID 1002 observer context, scope of accumulation, TID 1020).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from mappings.dicom_common import is_valid_uid
from mappings.rdsr import codes as c
from mappings.rdsr.errors import MalformedReportError
from mappings.rdsr.quirks import repair_text
from mappings.rdsr.reading import ValueReader, child_code, child_text
from mappings.rdsr.records import Equipment, PatientInfo, StudyContext
from mappings.rdsr.sr_tree import Code, ContentItem

_SINGLE_BYTE_CHARSETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6", "ISO 2022 IR 100"}


def declares_latin1_or_nothing(ds: Dataset) -> bool:
    """True when the declared character set is ASCII/Latin-1 (where UTF-8 mojibake can occur)."""
    raw = ds.get("SpecificCharacterSet")
    values = [raw] if isinstance(raw, str) or raw is None else list(raw)
    return all(str(v or "").strip() in _SINGLE_BYTE_CHARSETS for v in values)


def text(ds: Dataset, keyword: str, repair: bool = False) -> str | None:
    """A header string, stripped; None when absent or empty."""
    value = ds.get(keyword)
    if value is None:
        return None
    if not isinstance(value, str):
        value = "\\".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    value = value.strip(" \x00")
    if repair and value:
        value = repair_text(value)[0]
    return value or None


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _issuer(seq: object) -> tuple[str | None, str | None]:
    if not seq:
        return None, None
    item = seq[0]  # type: ignore[index]
    uid = item.get("UniversalEntityID")
    kind = item.get("UniversalEntityIDType")
    return (str(uid).strip() or None if uid else None), (str(kind).strip() or None if kind else None)


def parse_study_context(ds: Dataset) -> StudyContext:
    """SOP Common, General Study and General Series attributes (raises when a key UID is missing)."""
    study_uid = text(ds, "StudyInstanceUID")
    sop_uid = text(ds, "SOPInstanceUID")
    if not study_uid:
        raise MalformedReportError("Study Instance UID (0020,000D) is missing")
    if not sop_uid:
        raise MalformedReportError("SOP Instance UID (0008,0018) is missing")
    accession_uid, accession_kind = _issuer(ds.get("IssuerOfAccessionNumberSequence"))
    accession_ns = None
    if ds.get("IssuerOfAccessionNumberSequence"):
        accession_ns = text(ds.IssuerOfAccessionNumberSequence[0], "LocalNamespaceEntityID")
    return StudyContext(
        study_instance_uid=study_uid,
        sop_instance_uid=sop_uid,
        sop_class_uid=text(ds, "SOPClassUID") or "",
        series_instance_uid=text(ds, "SeriesInstanceUID"),
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        accession_number=text(ds, "AccessionNumber"),
        accession_issuer_namespace=accession_ns,
        accession_issuer_universal_id=accession_uid,
        accession_issuer_universal_id_type=accession_kind,
        study_date=text(ds, "StudyDate"),
        study_time=text(ds, "StudyTime"),
        series_date=text(ds, "SeriesDate"),
        series_time=text(ds, "SeriesTime"),
        content_date=text(ds, "ContentDate"),
        content_time=text(ds, "ContentTime"),
        utc_offset=text(ds, "TimezoneOffsetFromUTC"),
        study_description=text(ds, "StudyDescription", repair=declares_latin1_or_nothing(ds)),
    )


def parse_patient(ds: Dataset) -> PatientInfo:
    """Patient module: ID with its issuer (Issuer of Patient ID and its qualifiers), name, birth date, sex."""
    uid, kind = _issuer(ds.get("IssuerOfPatientIDQualifiersSequence"))
    return PatientInfo(
        patient_id=text(ds, "PatientID"),
        issuer_namespace=text(ds, "IssuerOfPatientID"),
        issuer_universal_id=uid,
        issuer_universal_id_type=kind,
        name=text(ds, "PatientName", repair=declares_latin1_or_nothing(ds)),
        birth_date=text(ds, "PatientBirthDate"),
        sex=text(ds, "PatientSex"),
    )


def parse_equipment(ds: Dataset, items: tuple[ContentItem, ...], reader: ValueReader,
                    study_uid: str) -> Equipment:
    """General Equipment attributes completed by the TID 1002 device observer context.

    The observer UID is kept only when it is a valid UID different from the study UID (a GE OEC
    Fluorostar writes the study UID there; GE Super-C sends it as TEXT, which is accepted).
    """
    root = ContentItem("CONTAINER", "", None, children=items)
    observer_uid = child_text(root, c.DEVICE_OBSERVER_UID)
    if observer_uid is not None and (observer_uid == study_uid or not is_valid_uid(observer_uid)):
        reader.warn(f"Device Observer UID {observer_uid!r} is not a usable device UID (it is the study UID "
                    "or not a UID); the device is identified by its serial number instead")
        observer_uid = None
    versions = ds.get("SoftwareVersions")
    if versions is None:
        software: tuple[str, ...] = ()
    elif isinstance(versions, str):
        software = (versions.strip(),) if versions.strip() else ()
    else:
        software = tuple(str(v).strip() for v in versions if str(v).strip())
    return Equipment(
        manufacturer=text(ds, "Manufacturer") or child_text(root, c.DEVICE_OBSERVER_MANUFACTURER),
        model=text(ds, "ManufacturerModelName") or child_text(root, c.DEVICE_OBSERVER_MODEL),
        serial_number=text(ds, "DeviceSerialNumber") or child_text(root, c.DEVICE_OBSERVER_SERIAL),
        software_versions=software,
        station_name=text(ds, "StationName") or child_text(root, c.DEVICE_OBSERVER_NAME),
        device_uid=text(ds, "DeviceUID"),
        observer_uid=observer_uid,
        observer_name=child_text(root, c.DEVICE_OBSERVER_NAME),
        location=child_text(root, c.DEVICE_OBSERVER_LOCATION),
        institution=text(ds, "InstitutionName", repair=declares_latin1_or_nothing(ds)),
    )


def scope_of_accumulation(items: tuple[ContentItem, ...], reader: ValueReader,
                          header_study_uid: str) -> Code | None:
    """(scope code, study UID named by the scope) — the study UID may sit at document level (Canon)."""
    root = ContentItem("CONTAINER", "", None, children=items)
    scope_item = root.find(c.SCOPE_OF_ACCUMULATION)
    scope = scope_item.code if scope_item is not None else None
    named = child_text(scope_item, c.STUDY_INSTANCE_UID) if scope_item is not None else None
    if named is None:
        named = child_text(root, c.STUDY_INSTANCE_UID)
        if named is not None:
            reader.warn("Study Instance UID (110180) is at document level instead of under Scope of "
                        "Accumulation")
    if named is not None and named != header_study_uid:
        reader.warn(f"the Scope of Accumulation names study {named}, the header study {header_study_uid}; "
                    "the header's Study Instance UID is used")
    return scope


def document_items(items: tuple[ContentItem, ...]) -> dict[str, object]:
    """Document-level items shared by TID 10001 and TID 10011."""
    root = ContentItem("CONTAINER", "", None, children=items)
    return {
        "procedure_reported": child_code(root, c.PROCEDURE_REPORTED),
        "acquisition_device_type": child_code(root, c.ACQUISITION_DEVICE_TYPE),
        "start_of_irradiation": child_text(root, c.START_OF_XRAY_IRRADIATION),
        "end_of_irradiation": child_text(root, c.END_OF_XRAY_IRRADIATION),
        "source_of_dose_information": child_code(root, c.SOURCE_OF_DOSE_INFORMATION),
    }
