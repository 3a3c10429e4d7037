"""Small synthetic dose reports built with pydicom, one knob per vendor quirk.

``ct_report()``, ``projection_report()``, ``mammo_report()`` and ``nm_report()`` return datasets whose
content follows TID 10011 / 10001 / 10021 closely enough for the mapping; keyword arguments switch on
one deviation at a time (units, numbers, codes, missing items). ``roundtrip()`` writes a dataset to
bytes in a chosen transfer syntax and reads it back, so the encoded-ContentSequence reader is exercised.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
RADIOPHARMACEUTICAL_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.68"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
MG_IMAGE = "1.2.840.10008.5.1.4.1.1.1.2"

TRANSFER_SYNTAXES = {"explicit-le": ExplicitVRLittleEndian, "implicit-le": ImplicitVRLittleEndian,
                     "explicit-be": ExplicitVRBigEndian}


def uid(n: int | str) -> str:
    """A valid test UID (2.25 arc) that is stable for a given ``n``."""
    if isinstance(n, int):
        return f"2.25.{1000 + n}"
    return f"2.25.{int(hashlib.sha1(n.encode()).hexdigest()[:24], 16)}"


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _item(value_type: str, concept: tuple[str, str, str] | None, rel: str, children: Sequence[Dataset]) -> Dataset:
    item = Dataset()
    item.RelationshipType = rel
    item.ValueType = value_type
    if concept is not None:
        item.ConceptNameCodeSequence = DicomSequence([code(*concept)])
    if children:
        item.ContentSequence = DicomSequence(list(children))
    return item


def container(concept: tuple[str, str, str], *children: Dataset, rel: str = "CONTAINS") -> Dataset:
    item = _item("CONTAINER", concept, rel, children)
    item.ContinuityOfContent = "SEPARATE"
    return item


def num(concept: tuple[str, str, str], value: str | None, unit: tuple[str, str, str] | None,
        *children: Dataset, rel: str = "CONTAINS") -> Dataset:
    """A NUM item; ``value=None`` gives an empty MeasuredValueSequence (Canon CXDI, GE Super-C)."""
    item = _item("NUM", concept, rel, children)
    if value is None:
        item.MeasuredValueSequence = DicomSequence([])
        return item
    measured = Dataset()
    encoded = value.encode("latin-1")
    encoded += b" " * (len(encoded) % 2)
    # kept encoded so that deliberately invalid DS text (a vendor quirk under test) reaches the file as is
    measured[0x0040A30A] = RawDataElement(Tag(0x0040A30A), "DS", len(encoded), encoded, 0, False, True)
    if unit is not None:
        measured.MeasurementUnitsCodeSequence = DicomSequence([code(*unit)])
    item.MeasuredValueSequence = DicomSequence([measured])
    return item


def code_item(concept: tuple[str, str, str], value: tuple[str, str, str], *children: Dataset,
              rel: str = "CONTAINS") -> Dataset:
    item = _item("CODE", concept, rel, children)
    item.ConceptCodeSequence = DicomSequence([code(*value)])
    return item


def text_item(concept: tuple[str, str, str], value: str, rel: str = "CONTAINS") -> Dataset:
    item = _item("TEXT", concept, rel, ())
    item.TextValue = value
    return item


def uid_item(concept: tuple[str, str, str], value: str, rel: str = "CONTAINS") -> Dataset:
    item = _item("UIDREF", concept, rel, ())
    item.UID = value
    return item


def datetime_item(concept: tuple[str, str, str], value: str, rel: str = "CONTAINS") -> Dataset:
    item = _item("DATETIME", concept, rel, ())
    item.DateTime = value
    return item


def person(name: str, role: tuple[str, str, str], person_id: str | None = None, rel: str = "CONTAINS") -> Dataset:
    children = [code_item(("113875", "DCM", "Person Role in Procedure"), role, rel="HAS PROPERTIES")]
    if person_id is not None:
        children.append(text_item(("113871", "DCM", "Person ID"), person_id, rel="HAS PROPERTIES"))
    item = _item("PNAME", ("113870", "DCM", "Person Name"), rel, children)
    item.PersonName = name
    return item


# --- units and codes used below ------------------------------------------------------------------------
MGY = ("mGy", "UCUM", "mGy")
GY = ("Gy", "UCUM", "Gy")
MGYCM = ("mGy.cm", "UCUM", "mGy.cm")
GYM2 = ("Gy.m2", "UCUM", "Gy.m2")
S = ("s", "UCUM", "s")
MM = ("mm", "UCUM", "mm")
KV = ("kV", "UCUM", "kV")
MA = ("mA", "UCUM", "mA")
MBQ = ("MBq", "UCUM", "MBq")
EVENTS = ("{events}", "UCUM", "events")
AUTHORIZING = ("113850", "DCM", "Irradiation Authorizing")
YES = ("R-0038D", "SRT", "Yes")
NO = ("R-00339", "SRT", "No")
BODY_PHANTOM = ("113691", "DCM", "IEC Body Dosimetry Phantom")
SPIRAL = ("P5-08001", "SRT", "Spiral Acquisition")


def _header(ds: Dataset, sop_class: str, n: int, patient_id: str | None, accession: str | None) -> None:
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(f"sop-{n}")
    ds.StudyInstanceUID = uid(f"study-{n}")
    ds.SeriesInstanceUID = uid(f"series-{n}")
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    ds.Modality = "SR"
    ds.PatientID = patient_id if patient_id is not None else ""
    ds.PatientName = "Doe^Jane"
    ds.PatientSex = "F"
    ds.PatientBirthDate = "19700101"
    ds.AccessionNumber = accession if accession is not None else ""
    ds.StudyDate = "20240301"
    ds.StudyTime = "101500"
    ds.SeriesDate = "20240301"
    ds.SeriesTime = "101600"
    ds.ContentDate = "20240301"
    ds.ContentTime = "103000"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Model 1"
    ds.DeviceSerialNumber = "SN-1"
    ds.StationName = "ROOM1"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _root(ds: Dataset, concept: tuple[str, str, str], template: str | None, items: list[Dataset]) -> Dataset:
    ds.ConceptNameCodeSequence = DicomSequence([code(*concept)])
    if template is not None:
        tpl = Dataset()
        tpl.MappingResource = "DCMR"
        tpl.TemplateIdentifier = template
        ds.ContentTemplateSequence = DicomSequence([tpl])
    ds.ContentSequence = DicomSequence(items)
    return ds


def _observer(observer_uid: str | None) -> list[Dataset]:
    items = [code_item(("121005", "DCM", "Observer Type"), ("121007", "DCM", "Device"), rel="HAS OBS CONTEXT")]
    if observer_uid:
        items.append(uid_item(("121012", "DCM", "Device Observer UID"), observer_uid, rel="HAS OBS CONTEXT"))
    return items


def ct_event(n: int, ctdivol: str = "10.0", dlp: str = "400.0", dlp_unit: tuple[str, str, str] = MGYCM,
             with_uid: bool = True, dose_check: bool = False, kvp: str = "120",
             target: tuple[str, str, str] | None = ("T-D4000", "SRT", "Abdomen")) -> Dataset:
    """One TID 10013 CT Acquisition container."""
    dose_children = [num(("113830", "DCM", "Mean CTDIvol"), ctdivol, MGY),
                     code_item(("113835", "DCM", "CTDIw Phantom Type"), BODY_PHANTOM),
                     num(("113838", "DCM", "DLP"), dlp, dlp_unit)]
    if dose_check:
        dose_children.append(container(
            ("113900", "DCM", "Dose Check Alert Details"),
            code_item(("113901", "DCM", "DLP Alert Value Configured"), YES),
            code_item(("113902", "DCM", "CTDIvol Alert Value Configured"), NO),
            num(("113903", "DCM", "DLP Alert Value"), "300", MGYCM),
            num(("113905", "DCM", "Accumulated DLP Forward Estimate"), dlp, MGYCM),
            text_item(("113907", "DCM", "Reason for Proceeding"), "clinical need"),
            person("Authoriser^Alice", AUTHORIZING),
        ))
    children = [
        text_item(("125203", "DCM", "Acquisition Protocol"), f"Protocol {n}"),
        code_item(("113820", "DCM", "CT Acquisition Type"), SPIRAL),
    ]
    if target is not None:
        children.append(code_item(("123014", "DCM", "Target Region"), target))
    if with_uid:
        children.append(uid_item(("113769", "DCM", "Irradiation Event UID"), uid(f"ct-event-{n}")))
    children += [
        container(("113822", "DCM", "CT Acquisition Parameters"),
                  num(("113824", "DCM", "Exposure Time"), "5.0", S),
                  num(("113825", "DCM", "Scanning Length"), "400", MM),
                  num(("113828", "DCM", "Pitch Factor"), "0.9", ("{ratio}", "UCUM", "ratio")),
                  num(("113823", "DCM", "Number of X-Ray Sources"), "1", ("{X-Ray sources}", "UCUM", "sources")),
                  container(("113831", "DCM", "CT X-Ray Source Parameters"),
                            text_item(("113832", "DCM", "Identification of the X-Ray Source"), "A"),
                            num(("113733", "DCM", "KVP"), kvp, KV),
                            num(("113734", "DCM", "X-Ray Tube Current"), "200", MA))),
        container(("113829", "DCM", "CT Dose"), *dose_children),
    ]
    return container(("113819", "DCM", "CT Acquisition"), *children)


def ct_report(n: int = 1, events: Sequence[Dataset] | None = None, dlp_total: str | None = "800.0",
              dlp_total_unit: tuple[str, str, str] = MGYCM, total_events: str | None = None,
              patient_id: str | None = "PID-1", accession: str | None = "ACC-1", start: str | None = "20240301101700",
              template: str | None = "10011", observer_uid: str | None = "auto",
              procedure: tuple[str, str, str] = ("P5-08000", "SRT", "Computed Tomography X-Ray"),
              sop_class: str = XRAY_DOSE_SR, extra: Sequence[Dataset] = ()) -> Dataset:
    """A TID 10011 CT dose report (two 400 mGy.cm events by default)."""
    ds = Dataset()
    _header(ds, sop_class, n, patient_id, accession)
    events = list(events) if events is not None else [ct_event(1), ct_event(2)]
    items = [code_item(("121058", "DCM", "Procedure reported"), procedure, rel="HAS CONCEPT MOD")]
    items += _observer(uid(f"observer-{n}") if observer_uid == "auto" else observer_uid)
    if start is not None:
        items.append(datetime_item(("113809", "DCM", "Start of X-Ray Irradiation"), start, rel="HAS OBS CONTEXT"))
    items.append(code_item(("113705", "DCM", "Scope of Accumulation"), ("113014", "DCM", "Study"),
                           uid_item(("110180", "DCM", "Study Instance UID"), ds.StudyInstanceUID,
                                    rel="HAS PROPERTIES"), rel="HAS OBS CONTEXT"))
    accumulated = [num(("113812", "DCM", "Total Number of Irradiation Events"),
                       total_events if total_events is not None else str(len(events)), EVENTS)]
    if dlp_total is not None:
        accumulated.append(num(("113813", "DCM", "CT Dose Length Product Total"), dlp_total, dlp_total_unit))
    items.append(container(("113811", "DCM", "CT Accumulated Dose Data"), *accumulated))
    items += events
    items += list(extra)
    return _root(ds, ("113701", "DCM", "X-Ray Radiation Dose Report"), template, items)


def projection_event(n: int, dap: str | None = "0.0001", dap_unit: tuple[str, str, str] = GYM2,
                     dose_rp: str | None = "0.002", dose_unit: tuple[str, str, str] = GY,
                     fluoro: bool = True, kvp: Sequence[str] = ("70",), started: str | None = None,
                     plane: tuple[str, str, str] = ("113622", "DCM", "Single Plane")) -> Dataset:
    """One TID 10003 Irradiation Event X-Ray Data container."""
    event_type = ("P5-06000", "SRT", "Fluoroscopy") if fluoro else ("113611", "DCM", "Stationary Acquisition")
    children = [
        code_item(("113764", "DCM", "Acquisition Plane"), plane, rel="HAS CONCEPT MOD"),
        uid_item(("113769", "DCM", "Irradiation Event UID"), uid(f"px-event-{n}")),
        datetime_item(("111526", "DCM", "DateTime Started"), started or f"202403011020{n % 60:02d}"),
        code_item(("113721", "DCM", "Irradiation Event Type"), event_type),
        num(("122130", "DCM", "Dose Area Product"), dap, dap_unit),
        num(("113738", "DCM", "Dose (RP)"), dose_rp, dose_unit),
        num(("112011", "DCM", "Positioner Primary Angle"), "10", ("deg", "UCUM", "deg")),
        container(("113771", "DCM", "X-Ray Filters"),
                  code_item(("113757", "DCM", "X-Ray Filter Material"), ("C-127F9", "SRT", "Copper")),
                  num(("113758", "DCM", "X-Ray Filter Thickness Minimum"), "0.3", MM)),
    ]
    children += [num(("113733", "DCM", "KVP"), k, KV) for k in kvp]
    return container(("113706", "DCM", "Irradiation Event X-Ray Data"), *children)


def accumulated_projection(dap_total: str | None = "0.0002", dap_unit: tuple[str, str, str] = GYM2,
                           dose_total: str | None = "0.004", dose_unit: tuple[str, str, str] = GY,
                           fluoro_time: str = "30", plane: tuple[str, str, str] = ("113622", "DCM", "Single Plane")
                           ) -> Dataset:
    """One TID 10002 Accumulated X-Ray Dose Data container (one plane)."""
    return container(("113702", "DCM", "Accumulated X-Ray Dose Data"),
                     code_item(("113764", "DCM", "Acquisition Plane"), plane, rel="HAS CONCEPT MOD"),
                     num(("113722", "DCM", "Dose Area Product Total"), dap_total, dap_unit),
                     num(("113725", "DCM", "Dose (RP) Total"), dose_total, dose_unit),
                     num(("113730", "DCM", "Total Fluoro Time"), fluoro_time, S))


def projection_report(n: int = 2, accumulations: Sequence[Dataset] | None = None,
                      events: Sequence[Dataset] | None = None, template: str | None = "10001",
                      procedure: tuple[str, str, str] = ("113704", "DCM", "Projection X-Ray"),
                      patient_id: str | None = "PID-2", accession: str | None = "ACC-2",
                      extra: Sequence[Dataset] = ()) -> Dataset:
    """A TID 10001 projection X-ray report (two fluoroscopy events of 1 mGy.cm2… by default)."""
    ds = Dataset()
    _header(ds, XRAY_DOSE_SR, n, patient_id, accession)
    items = [code_item(("121058", "DCM", "Procedure reported"), procedure, rel="HAS CONCEPT MOD")]
    items += _observer(uid(f"observer-{n}"))
    items += list(accumulations if accumulations is not None else [accumulated_projection()])
    items += list(events if events is not None else [projection_event(1), projection_event(2)])
    items += list(extra)
    return _root(ds, ("113701", "DCM", "X-Ray Radiation Dose Report"), template, items)


def mammo_report(n: int = 3, left: str = "1.3", right: str = "1.2") -> Dataset:
    """A TID 10001 mammography report: one CC view per breast, accumulated AGD per breast."""
    def agd(value: str, side: tuple[str, str, str]) -> Dataset:
        return num(("111637", "DCM", "Accumulated Average Glandular Dose"), value, MGY,
                   code_item(("G-C171", "SRT", "Laterality"), side, rel="HAS CONCEPT MOD"))

    def view(k: int, value: str, side: tuple[str, str, str]) -> Dataset:
        return container(("113706", "DCM", "Irradiation Event X-Ray Data"),
                         uid_item(("113769", "DCM", "Irradiation Event UID"), uid(f"mg-event-{n}-{k}")),
                         datetime_item(("111526", "DCM", "DateTime Started"), f"2024030110{k:02d}00"),
                         code_item(("113721", "DCM", "Irradiation Event Type"),
                                   ("113611", "DCM", "Stationary Acquisition")),
                         code_item(("T-D0005", "SRT", "Anatomical structure"), ("T-04000", "SRT", "Breast"),
                                   code_item(("G-C171", "SRT", "Laterality"), side, rel="HAS CONCEPT MOD")),
                         num(("111631", "DCM", "Average Glandular Dose"), value, MGY),
                         num(("111633", "DCM", "Compression Thickness"), "45", MM),
                         num(("113733", "DCM", "KVP"), "29", KV))

    acc = container(("113702", "DCM", "Accumulated X-Ray Dose Data"),
                    code_item(("113764", "DCM", "Acquisition Plane"), ("113622", "DCM", "Single Plane"),
                              rel="HAS CONCEPT MOD"),
                    agd(left, ("T-04030", "SRT", "Left breast")), agd(right, ("T-04020", "SRT", "Right breast")))
    return projection_report(n, accumulations=[acc],
                             events=[view(1, left, ("G-A101", "SRT", "Left")),
                                     view(2, right, ("G-A100", "SRT", "Right"))],
                             procedure=("P5-40010", "SRT", "Mammography"))


def nm_report(n: int = 4, activity: str = "350") -> Dataset:
    """A TID 10021 radiopharmaceutical report with one FDG administration."""
    ds = Dataset()
    _header(ds, RADIOPHARMACEUTICAL_DOSE_SR, n, "PID-4", "ACC-4")
    admin = container(
        ("113502", "DCM", "Radiopharmaceutical Administration"),
        code_item(("F-61FDB", "SRT", "Radiopharmaceutical agent"), ("C-B1031", "SRT", "Fluorodeoxyglucose F^18^"),
                  code_item(("C-10072", "SRT", "Radionuclide"), ("C-111A1", "SRT", "^18^Fluorine"),
                            rel="HAS PROPERTIES")),
        uid_item(("113503", "DCM", "Radiopharmaceutical Administration Event UID"), uid(f"admin-{n}")),
        datetime_item(("123003", "DCM", "Radiopharmaceutical Start DateTime"), "20240301091500"),
        num(("113507", "DCM", "Administered activity"), activity, MBQ),
        code_item(("G-C340", "SRT", "Route of administration"), ("G-D101", "SRT", "Intravenous route")),
    )
    return _root(ds, ("113500", "DCM", "Radiopharmaceutical Radiation Dose Report"), "10021", [admin])


def image(sop_class: str = CT_IMAGE, n: int = 5, **attributes: object) -> Dataset:
    """An image header (no pixel data) with the given dose attributes."""
    ds = Dataset()
    _header(ds, sop_class, n, "PID-5", "ACC-5")
    for name in ("ValueType", "ContinuityOfContent", "CompletionFlag", "VerificationFlag"):
        delattr(ds, name)
    ds.Modality = {CT_IMAGE: "CT", DX_IMAGE: "DX", MG_IMAGE: "MG"}.get(sop_class, "OT")
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def roundtrip(ds: Dataset, syntax: str = "explicit-le") -> Dataset:
    """Encode ``ds`` in the transfer syntax named ``syntax`` and read it back (sequences stay encoded)."""
    ds.file_meta.TransferSyntaxUID = TRANSFER_SYNTAXES[syntax]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def to_bytes(ds: Dataset, syntax: str = "explicit-le") -> bytes:
    ds.file_meta.TransferSyntaxUID = TRANSFER_SYNTAXES[syntax]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
