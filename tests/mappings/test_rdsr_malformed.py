"""Malformed objects: each ends in a specific RdsrMappingError subclass, never another exception."""

from __future__ import annotations

import contextlib
import io

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from mappings.rdsr import (
    DatasetKind,
    MalformedNumberError,
    MalformedReportError,
    NotADoseReportError,
    RdsrMappingError,
    UnsupportedTemplateError,
    classify_dataset,
    map_dose_report,
    map_image_header_dose,
)
from tests.mappings import rdsr_factory as f


def test_empty_dataset():
    assert classify_dataset(Dataset()) is DatasetKind.NOT_A_DOSE_OBJECT
    with pytest.raises(NotADoseReportError):
        map_dose_report(Dataset())


def test_dose_report_without_content():
    ds = f.ct_report()
    del ds.ContentSequence
    with pytest.raises(MalformedReportError, match=r"no content|neither CT"):
        map_dose_report(ds)


def test_dose_report_with_an_empty_content_sequence_and_a_template():
    ds = f.ct_report()
    ds.ContentSequence = []
    with pytest.raises(MalformedReportError, match="no content items"):
        map_dose_report(ds)


def test_wrong_root_concept_is_not_a_dose_report():
    ds = f.ct_report()
    ds.ConceptNameCodeSequence[0].CodeValue = "18748-4"
    ds.ConceptNameCodeSequence[0].CodingSchemeDesignator = "LN"
    assert classify_dataset(ds) is DatasetKind.NOT_A_DOSE_OBJECT
    with pytest.raises(NotADoseReportError):
        map_dose_report(ds)


def test_patient_dose_report_is_recognised_but_not_mapped():
    ds = f.ct_report()
    ds.ConceptNameCodeSequence[0].CodeValue = "128401"
    assert classify_dataset(ds) is DatasetKind.PATIENT_DOSE_REPORT
    with pytest.raises(UnsupportedTemplateError):
        map_dose_report(ds)


@pytest.mark.parametrize(("keyword", "tag"), [("StudyInstanceUID", "0020,000D"), ("SOPInstanceUID", "0008,0018")])
def test_missing_key_uid(keyword, tag):
    ds = f.ct_report()
    delattr(ds, keyword)
    with pytest.raises(MalformedReportError, match=tag):
        map_dose_report(ds)


@pytest.mark.parametrize("value", ["NaN", "inf", "abc", "1.2.3", "--5"])
def test_unreadable_numbers_in_needed_items(value):
    ds = f.ct_report(events=[f.ct_event(1, ctdivol=value), f.ct_event(2)])
    with pytest.raises(MalformedNumberError, match="113830"):
        map_dose_report(f.roundtrip(ds))


def test_unreadable_number_in_an_item_dacs_does_not_use_is_only_ignored():
    extra = [f.num(("99999", "99PRIVATE", "Private value"), "not-a-number", ("1", "UCUM", "1"))]
    result = map_dose_report(f.roundtrip(f.ct_report(extra=extra)))
    assert result.event_count == 2


def test_negative_dose():
    ds = f.ct_report(events=[f.ct_event(1, dlp="-5"), f.ct_event(2)])
    with pytest.raises(MalformedReportError, match="negative"):
        map_dose_report(ds)


def test_unit_of_the_wrong_dimension():
    ds = f.ct_report(events=[f.ct_event(1, dlp="5", dlp_unit=("kg", "UCUM", "kg")), f.ct_event(2)])
    with pytest.raises(MalformedReportError, match="kg"):
        map_dose_report(ds)


def test_ct_report_without_events_or_totals():
    ds = f.ct_report(events=[])
    ds.ContentSequence = [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue != "113811"]
    with pytest.raises(MalformedReportError, match="neither accumulated data"):
        map_dose_report(ds)


def test_duplicate_event_uids():
    ds = f.ct_report(events=[f.ct_event(1), f.ct_event(1)])
    with pytest.raises(MalformedReportError, match="twice"):
        map_dose_report(ds)


def test_radiopharmaceutical_report_without_administration():
    ds = f.nm_report()
    ds.ContentSequence = []
    with pytest.raises(MalformedReportError):
        map_dose_report(ds)


def test_truncated_content_sequence_bytes():
    raw = f.to_bytes(f.ct_report())
    ds = pydicom.dcmread(io.BytesIO(raw))
    elem = ds.get_item(0x0040A730)
    ds._dict[elem.tag] = elem._replace(value=elem.value[: len(elem.value) // 2])  # corrupt the encoded sequence
    with pytest.raises(RdsrMappingError):
        map_dose_report(ds)


def test_an_image_is_not_a_dose_report_and_a_report_is_not_an_image():
    with pytest.raises(NotADoseReportError):
        map_dose_report(f.image(CTDIvol=5.0))
    with pytest.raises(NotADoseReportError):
        map_image_header_dose(f.ct_report())


_REPORT = f.to_bytes(f.ct_report(events=[f.ct_event(1, dose_check=True), f.ct_event(2)]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(min_value=300, max_value=len(_REPORT) - 1), st.integers(0, 255)),
                min_size=1, max_size=6))
def test_corrupted_bytes_never_raise_anything_else(flips):
    """Flip bytes of an encoded report: the mapping either succeeds or raises RdsrMappingError."""
    data = bytearray(_REPORT)
    for position, value in flips:
        data[position] = value
    try:
        ds = pydicom.dcmread(io.BytesIO(bytes(data)))
        _ = ds.get("SOPClassUID")
    except Exception:
        return
    with contextlib.suppress(RdsrMappingError):
        map_dose_report(ds)
