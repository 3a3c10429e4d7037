"""RDSR → FHIR: DICOM radiation dose reports (and legacy image headers) to FHIR R4 transaction Bundles.

Public API (all pure: a pydicom ``Dataset`` in, plain JSON-ready dicts out)::

    classify_dataset(ds) -> DatasetKind
    map_dose_report(ds, options=None) -> MappingResult        # TID 10011 / 10001 / 10021
    map_image_header_dose(ds, options=None) -> MappingResult  # CT/DX/CR/MG/XA/RF image headers
    map_mpps_dose(create, updates, options=None) -> MappingResult  # completed MPPS (fallback dose)
    parse_dose_report(ds) -> DoseStudy                        # the typed intermediate record
    supersedes(new, old_event_uids) -> bool                   # cumulative re-sends
    summary_event_uids(summary_observation) -> frozenset[str]
    merge_imaging_study(stored, incoming) -> dict

Every failure is a :class:`RdsrMappingError` subclass. Module map: ``sr_tree`` (reading the content
tree), ``quirks`` (vendor repairs), ``records`` (typed records), ``ct`` / ``projection`` /
``radiopharmaceutical`` (template parsers), ``fhir`` (resource emitters), ``api`` (Bundle contract),
``image_header`` (legacy header dose), ``mpps`` (MPPS fallback dose), ``classify`` (what an object is).
"""

from mappings.rdsr.api import (
    MappingResult,
    accumulation_key,
    map_dose_report,
    map_dose_study,
    merge_imaging_study,
    summary_event_uids,
    supersedes,
)
from mappings.rdsr.classify import DatasetKind, classify_dataset
from mappings.rdsr.errors import (
    MalformedNumberError,
    MalformedReportError,
    NoHeaderDoseError,
    NotADoseReportError,
    RdsrMappingError,
    UnsupportedTemplateError,
)
from mappings.rdsr.fhir import MappingOptions
from mappings.rdsr.image_header import map_image_header_dose
from mappings.rdsr.mpps import MPPS_DOSE_SYSTEM, MppsNotCompletedError, NoMppsDoseError, map_mpps_dose
from mappings.rdsr.records import DoseStudy
from mappings.rdsr.report import parse_dose_report

__all__ = [
    "MPPS_DOSE_SYSTEM",
    "DatasetKind",
    "DoseStudy",
    "MalformedNumberError",
    "MalformedReportError",
    "MappingOptions",
    "MappingResult",
    "MppsNotCompletedError",
    "NoHeaderDoseError",
    "NoMppsDoseError",
    "NotADoseReportError",
    "RdsrMappingError",
    "UnsupportedTemplateError",
    "accumulation_key",
    "classify_dataset",
    "map_dose_report",
    "map_dose_study",
    "map_image_header_dose",
    "map_mpps_dose",
    "merge_imaging_study",
    "parse_dose_report",
    "summary_event_uids",
    "supersedes",
]
