"""Outcomes, listener settings and the structural data set check, without a network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from integrations.dicom import (
    DicomListenerConfig,
    MalformedDataSet,
    MppsOutcome,
    MppsStatus,
    ReceivedObject,
    StoreOutcome,
    StoreStatus,
    check_header,
    check_structure,
)
from integrations.dicom.objects import encode_part10_prefix, error_comment, make_file_meta

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
SYNTAXES = [
    (ImplicitVRLittleEndian, True, True),
    (ExplicitVRLittleEndian, False, True),
    (ExplicitVRBigEndian, False, False),
]


def nested_sr(undefined: bool) -> Dataset:
    """SR-shaped nesting: content items inside content items, as TID 10011 has."""
    ds = Dataset()
    ds.SOPClassUID = XRAY_DOSE_SR
    ds.SOPInstanceUID = generate_uid()
    leaf = Dataset()
    leaf.ValueType = "NUM"
    leaf.TextValue = "x"
    middle = Dataset()
    middle.ValueType = "CONTAINER"
    middle.ContentSequence = Sequence([leaf, leaf])
    ds.ContentSequence = Sequence([middle])
    ds.PatientID = "P1"
    for holder in (ds, middle):
        holder["ContentSequence"].is_undefined_length = undefined
        for item in holder.ContentSequence:
            item.is_undefined_length_sequence_item = undefined
    return ds


def encode(ds: Dataset, implicit: bool, little_endian: bool) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, little_endian
    write_dataset(buffer, ds)
    return buffer.getvalue()


@pytest.mark.parametrize("undefined", [True, False])
@pytest.mark.parametrize(("syntax", "implicit", "little_endian"), SYNTAXES)
def test_every_truncation_inside_an_element_is_detected(
    undefined: bool, syntax: str, implicit: bool, little_endian: bool
) -> None:
    ds = nested_sr(undefined)
    data = encode(ds, implicit, little_endian)
    uids = check_structure(data, syntax)
    assert set(uids.values()) == {XRAY_DOSE_SR, ds.SOPInstanceUID}
    # A cut between two top-level elements leaves a shorter but valid data set: nothing in the
    # encoding can tell (over the network, P-DATA framing can). Every other cut must be caught.
    boundaries = set()
    for keep in range(1, len(ds)):
        shorter = Dataset()
        for element in list(ds)[:keep]:
            shorter.add(element)
        boundaries.add(len(encode(shorter, implicit, little_endian)))
    assert len(boundaries) == len(ds) - 1
    for cut in sorted(set(range(1, len(data))) - boundaries):
        with pytest.raises(MalformedDataSet, match="truncated"):
            check_structure(data[:cut], syntax)


def test_unclosed_and_stray_delimiters_are_malformed() -> None:
    data = encode(nested_sr(True), False, True)
    sequence_end = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    assert data.count(sequence_end) == 2
    unclosed = data.replace(sequence_end, b"", 1)
    with pytest.raises(MalformedDataSet):
        check_structure(unclosed, ExplicitVRLittleEndian)
    with pytest.raises(MalformedDataSet, match="delimiter"):
        check_structure(sequence_end + data, ExplicitVRLittleEndian)


def received(dataset: bytes, sop_class: str, sop_instance: str) -> ReceivedObject:
    prefix = encode_part10_prefix(make_file_meta(sop_class, sop_instance, ExplicitVRLittleEndian))
    return ReceivedObject(
        part10=prefix + dataset,
        dataset_offset=len(prefix),
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        received_at=datetime.now(UTC),
    )


def test_check_header_names_the_mismatch() -> None:
    ds = nested_sr(False)
    data = encode(ds, False, True)
    assert check_header(received(data, XRAY_DOSE_SR, ds.SOPInstanceUID)) is None
    other_instance = check_header(received(data, XRAY_DOSE_SR, generate_uid()))
    assert other_instance is not None and other_instance.status == StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS
    other_class = check_header(received(data, "1.2.840.10008.5.1.4.1.1.88.22", ds.SOPInstanceUID))
    assert other_class is not None and XRAY_DOSE_SR in other_class.reason
    del ds.SOPInstanceUID
    missing = check_header(received(encode(ds, False, True), XRAY_DOSE_SR, generate_uid()))
    assert missing is not None and missing.status == StoreStatus.CANNOT_UNDERSTAND


def test_failure_outcomes_need_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        StoreOutcome(StoreStatus.OUT_OF_RESOURCES)
    with pytest.raises(ValueError, match="reason"):
        MppsOutcome(MppsStatus.NO_SUCH_OBJECT_INSTANCE)
    assert StoreOutcome(StoreStatus.WARNING_COERCION_OF_DATA_ELEMENTS, "coerced").is_failure is False
    assert StoreOutcome(StoreStatus.CANNOT_UNDERSTAND, "garbage").is_failure is True
    assert StoreOutcome.success().is_failure is False


def test_error_comment_fits_lo() -> None:
    comment = error_comment("Überlauf \\ " + "x" * 100)
    assert len(comment) == 64 and comment.isascii() and "\\" not in comment and comment.endswith("...")
    assert error_comment("  disk\nfull ") == "disk full"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ae_title": ""},
        {"ae_title": "A" * 17},
        {"ae_title": "BAD\\AE"},
        {"accepted_calling_ae_titles": frozenset({"OK", "TAB\tAE"})},
        {"port": 70000},
        {"max_pdu_size": 1000},
        {"max_associations": 0},
    ],
)
def test_invalid_listener_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DicomListenerConfig(**kwargs)  # type: ignore[arg-type]


def test_accepted_calling_titles_are_trimmed() -> None:
    config = DicomListenerConfig(accepted_calling_ae_titles=frozenset({"CT1 ", " MG"}))
    assert config.accepted_calling_ae_titles == frozenset({"CT1", "MG"})
