"""``parse_dose_report``: a dose-report dataset → one validated :class:`DoseStudy`.

Steps, each its own module: classify (root concept + template) → read the content tree → normalise
vendor quirks (warnings) → parse the header and document items → parse the template's content
(TID 10011 / 10001 / 10021) → cross-check reported totals (warnings; reported totals are kept).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from mappings.rdsr import codes as c
from mappings.rdsr.classify import DECODING_ERRORS, DatasetKind, classify_dataset, root_concept
from mappings.rdsr.ct import check_ct_totals, parse_ct_accumulation, parse_ct_events
from mappings.rdsr.errors import MalformedReportError, NotADoseReportError, RdsrMappingError, UnsupportedTemplateError
from mappings.rdsr.header import (
    declares_latin1_or_nothing,
    document_items,
    parse_equipment,
    parse_patient,
    parse_study_context,
    scope_of_accumulation,
)
from mappings.rdsr.projection import check_projection_totals, parse_projection_report
from mappings.rdsr.quirks import normalise_content_tree
from mappings.rdsr.radiopharmaceutical import parse_administrations
from mappings.rdsr.reading import ValueReader, persons_in
from mappings.rdsr.records import DoseReportTemplate, DoseStudy
from mappings.rdsr.sr_tree import read_content_tree


def parse_dose_report(ds: Dataset, kind: DatasetKind | None = None) -> DoseStudy:
    """Parse a TID 10011, 10001 or 10021 dose report into a :class:`DoseStudy`.

    ``kind`` may be passed when the caller already ran :func:`classify_dataset`. Raises a subclass of
    :class:`RdsrMappingError` — never another exception type — when the object is not a mappable dose
    report or is malformed.
    """
    try:
        return _parse(ds, kind)
    except RdsrMappingError:
        raise
    except DECODING_ERRORS as exc:
        raise MalformedReportError(f"dose report cannot be parsed: {type(exc).__name__}: {exc}") from exc


def _parse(ds: Dataset, kind: DatasetKind | None) -> DoseStudy:
    kind = kind or classify_dataset(ds)
    if not kind.is_mapped_dose_report:
        root = root_concept(ds)
        xray_root = root is not None and root.key == c.XRAY_RADIATION_DOSE_REPORT
        if kind is DatasetKind.PROPRIETARY_DOSE_SUMMARY and xray_root:
            raise MalformedReportError("X-Ray Radiation Dose Report with neither CT (TID 10011) nor projection "
                                       "(TID 10001) content")
        if kind.is_kept_unmapped:
            raise UnsupportedTemplateError(f"{kind.value}: archived and flagged, not mapped to dose values")
        raise NotADoseReportError(f"not a dose report DACS maps ({kind.value})")
    template = kind.template
    assert template is not None
    raw_items = read_content_tree(ds)
    if not raw_items:
        raise MalformedReportError("the dose report has no content items")
    tree = normalise_content_tree(raw_items, repair_charset=declares_latin1_or_nothing(ds))
    items = tree.items
    reader = ValueReader()
    context = parse_study_context(ds)
    study = dict(
        template=template,
        context=context,
        patient=parse_patient(ds),
        equipment=parse_equipment(ds, items, reader, context.study_instance_uid),
        scope_of_accumulation=scope_of_accumulation(items, reader, context.study_instance_uid),
        persons=tuple(persons_in(items)),
    )
    if template is DoseReportTemplate.RADIOPHARMACEUTICAL:
        administrations = parse_administrations(items, context.sop_instance_uid, reader)
        if not administrations:
            raise MalformedReportError("radiopharmaceutical dose report without any administration (113502)")
        study.update(administrations=administrations,
                     procedure_reported=_first_code(items, (c.PROCEDURE_REPORTED, c.ASSOCIATED_PROCEDURE)))
    else:
        study.update(document_items(items))
        if template is DoseReportTemplate.CT:
            accumulation = parse_ct_accumulation(items, reader)
            events = parse_ct_events(items, context.sop_instance_uid, reader)
            if accumulation is None and not events:
                raise MalformedReportError("CT dose report with neither accumulated data (113811) nor events (113819)")
            check_ct_totals(accumulation, events, reader)
            study.update(ct_accumulation=accumulation, ct_events=events)
        else:
            proc = study.get("procedure_reported")
            mammography = proc is not None and proc.key == c.MAMMOGRAPHY  # type: ignore[attr-defined]
            accumulations, pevents = parse_projection_report(items, context.sop_instance_uid, mammography, reader)
            if not accumulations and not pevents:
                raise MalformedReportError("projection dose report with neither accumulated data (113702) nor "
                                           "events (113706)")
            check_projection_totals(accumulations, pevents, reader)
            study.update(projection_accumulations=accumulations, projection_events=pevents)
    study["warnings"] = tree.warnings + tuple(reader.warnings)
    return DoseStudy(**study)  # type: ignore[arg-type]


def _first_code(items, keys):  # type: ignore[no-untyped-def]
    for item in items:
        if item.concept is not None and item.concept.key in keys and item.code is not None:
            return item.code
    return None
