"""What a received DICOM object is, for the dose pipeline: a dose report of which template, a proprietary
summary to keep but not map, an image whose header may carry dose, or nothing DACS maps.

Dose reports are recognised by their SR root concept and template (PS3.16), not by SOP class: GE CTs
send TID 10011 in Enhanced SR, Enhanced/Comprehensive SR can also hold ordinary reports, and the
template identifier is sometimes missing (GE OEC Elite MiniView), in which case the document content
decides (as PS3.16's discriminators would: procedure reported, or the containers present).
"""

from __future__ import annotations

import enum

from pydicom.dataset import Dataset

from mappings.rdsr import codes as c
from mappings.rdsr.codes import canonical_code
from mappings.rdsr.errors import MalformedReportError, RdsrMappingError
from mappings.rdsr.records import DoseReportTemplate
from mappings.rdsr.sr_tree import Code, ContentItem, read_content_tree


class DatasetKind(enum.Enum):
    """The pipeline's view of an object. ``mapping`` says which mapping function applies, if any."""

    CT_DOSE_REPORT = "ct-dose-report"  # TID 10011
    PROJECTION_DOSE_REPORT = "projection-dose-report"  # TID 10001 (radiography, fluoroscopy, mammography)
    RADIOPHARMACEUTICAL_DOSE_REPORT = "radiopharmaceutical-dose-report"  # TID 10021
    PATIENT_DOSE_REPORT = "patient-dose-report"  # TID 10030: kept, not mapped
    ENHANCED_XRAY_DOSE_REPORT = "enhanced-xray-dose-report"  # SOP class .88.76 (TID 10040): kept, not mapped
    PROPRIETARY_DOSE_SUMMARY = "proprietary-dose-summary"  # e.g. Siemens Arcadis "Radiation Summary Report"
    IMAGE_HEADER_DOSE = "image-header-dose"  # CT/DX/CR/MG/XA/RF image: legacy header dose
    NOT_A_DOSE_OBJECT = "not-a-dose-object"  # other SR (e.g. a radiology report), other classes

    @property
    def is_mapped_dose_report(self) -> bool:
        """True for the kinds :func:`map_dose_report` maps."""
        return self in _MAPPED

    @property
    def is_kept_unmapped(self) -> bool:
        """Dose-related objects DACS archives and flags but does not turn into dose numbers."""
        return self in (DatasetKind.PATIENT_DOSE_REPORT, DatasetKind.ENHANCED_XRAY_DOSE_REPORT,
                        DatasetKind.PROPRIETARY_DOSE_SUMMARY)

    @property
    def template(self) -> DoseReportTemplate | None:
        return _TEMPLATES.get(self)


_MAPPED = frozenset({DatasetKind.CT_DOSE_REPORT, DatasetKind.PROJECTION_DOSE_REPORT,
                     DatasetKind.RADIOPHARMACEUTICAL_DOSE_REPORT})
_TEMPLATES = {
    DatasetKind.CT_DOSE_REPORT: DoseReportTemplate.CT,
    DatasetKind.PROJECTION_DOSE_REPORT: DoseReportTemplate.PROJECTION,
    DatasetKind.RADIOPHARMACEUTICAL_DOSE_REPORT: DoseReportTemplate.RADIOPHARMACEUTICAL,
    DatasetKind.PATIENT_DOSE_REPORT: DoseReportTemplate.PATIENT,
}

ENHANCED_XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.76"

# Image storage SOP classes whose headers can carry dose attributes (PS3.4 B.5; pydicom UID dictionary).
IMAGE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",  # Computed Radiography Image
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",  # Digital X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX",  # Digital X-Ray Image - For Processing
    "1.2.840.10008.5.1.4.1.1.1.2": "MG",  # Digital Mammography X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1": "MG",  # Digital Mammography X-Ray Image - For Processing
    "1.2.840.10008.5.1.4.1.1.1.3": "IO",  # Digital Intra-Oral X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.3.1": "IO",  # Digital Intra-Oral X-Ray Image - For Processing
    "1.2.840.10008.5.1.4.1.1.2": "CT",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.2.2": "CT",  # Legacy Converted Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.12.1": "XA",  # X-Ray Angiographic Image
    "1.2.840.10008.5.1.4.1.1.12.1.1": "XA",  # Enhanced XA Image
    "1.2.840.10008.5.1.4.1.1.12.2": "RF",  # X-Ray Radiofluoroscopic Image
    "1.2.840.10008.5.1.4.1.1.12.2.1": "RF",  # Enhanced XRF Image
    "1.2.840.10008.5.1.4.1.1.13.1.1": "XA",  # X-Ray 3D Angiographic Image
    "1.2.840.10008.5.1.4.1.1.13.1.3": "MG",  # Breast Tomosynthesis Image
    "1.2.840.10008.5.1.4.1.1.13.1.4": "MG",  # Breast Projection X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.13.1.5": "MG",  # Breast Projection X-Ray Image - For Processing
}


def root_concept(ds: Dataset) -> Code | None:
    """The document's root concept name (0040,A043), legacy codes mapped."""
    seq = ds.get("ConceptNameCodeSequence")
    if not seq:
        return None
    item = seq[0]
    return canonical_code(Code(str(item.get("CodeValue") or "").strip(),
                               str(item.get("CodingSchemeDesignator") or "").strip(),
                               str(item.get("CodeMeaning") or "").strip()))


def template_identifier(ds: Dataset) -> str | None:
    """TemplateIdentifier (0040,DB00) of the root, when the DCMR template is declared."""
    seq = ds.get("ContentTemplateSequence")
    if not seq:
        return None
    item = seq[0]
    resource = str(item.get("MappingResource") or "DCMR").strip()
    ident = str(item.get("TemplateIdentifier") or "").strip()
    return ident if ident and resource in ("DCMR", "") else None


def xray_template_from_content(items: tuple[ContentItem, ...]) -> DatasetKind | None:
    """TID 10001 or 10011 from the document content, for reports that do not declare the template."""
    for item in items:
        if item.concept is not None and canonical_code(item.concept).key == c.PROCEDURE_REPORTED and item.code:
            proc = canonical_code(item.code).key
            if proc == c.COMPUTED_TOMOGRAPHY:
                return DatasetKind.CT_DOSE_REPORT
            if proc in (c.PROJECTION_XRAY, c.MAMMOGRAPHY):
                return DatasetKind.PROJECTION_DOSE_REPORT
    keys = {item.concept.key for item in items if item.concept is not None}
    if keys & {c.CT_ACCUMULATED_DOSE_DATA, c.CT_ACQUISITION}:
        return DatasetKind.CT_DOSE_REPORT
    if keys & {c.ACCUMULATED_XRAY_DOSE_DATA, c.IRRADIATION_EVENT_XRAY_DATA}:
        return DatasetKind.PROJECTION_DOSE_REPORT
    return None


DECODING_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
                   NotImplementedError, UnicodeError, LookupError, EOFError, OSError)
"""What pydicom's lazy decoding of a damaged dataset can raise on attribute access."""


def classify_dataset(ds: Dataset) -> DatasetKind:
    """Classify ``ds`` by SR root concept and template (or, for images, by SOP class).

    Reads only the header and, when no template is declared, the top level of the content tree.
    Anything unrecognised is ``NOT_A_DOSE_OBJECT``; a header pydicom cannot decode raises
    :class:`MalformedReportError` (the only exception it raises).
    """
    try:
        return _classify(ds)
    except RdsrMappingError:
        raise
    except DECODING_ERRORS as exc:
        raise MalformedReportError(f"the header cannot be decoded: {type(exc).__name__}: {exc}") from exc


def _classify(ds: Dataset) -> DatasetKind:
    sop_class = str(ds.get("SOPClassUID") or "").strip()
    root = root_concept(ds)
    if root is None:
        if sop_class in IMAGE_SOP_CLASSES:
            return DatasetKind.IMAGE_HEADER_DOSE
        if sop_class == ENHANCED_XRAY_RADIATION_DOSE_SR:
            return DatasetKind.ENHANCED_XRAY_DOSE_REPORT
        return DatasetKind.NOT_A_DOSE_OBJECT
    key = root.key
    if key == c.RADIOPHARMACEUTICAL_RADIATION_DOSE_REPORT:
        return DatasetKind.RADIOPHARMACEUTICAL_DOSE_REPORT
    if key == c.PATIENT_RADIATION_DOSE_REPORT:
        return DatasetKind.PATIENT_DOSE_REPORT
    if key == c.SIEMENS_RADIATION_SUMMARY:
        return DatasetKind.PROPRIETARY_DOSE_SUMMARY
    if sop_class == ENHANCED_XRAY_RADIATION_DOSE_SR:
        return DatasetKind.ENHANCED_XRAY_DOSE_REPORT
    if key != c.XRAY_RADIATION_DOSE_REPORT:
        return DatasetKind.NOT_A_DOSE_OBJECT
    template = template_identifier(ds)
    if template == DoseReportTemplate.CT.value:
        return DatasetKind.CT_DOSE_REPORT
    if template == DoseReportTemplate.PROJECTION.value:
        return DatasetKind.PROJECTION_DOSE_REPORT
    try:
        kind = xray_template_from_content(read_content_tree(ds))
    except RdsrMappingError:
        kind = None
    # An X-Ray Radiation Dose Report whose content says neither CT nor projection is still a dose
    # report: keep it for inspection rather than pretend it is something else.
    return kind or DatasetKind.PROPRIETARY_DOSE_SUMMARY
