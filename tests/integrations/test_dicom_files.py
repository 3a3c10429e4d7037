"""The DICOM file walker behind ``dacs import``: folders, DICOMDIR media, raw data sets, junk."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.fileset import FileSet
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from integrations.dicom import (
    NotImportable,
    ReceivedObject,
    SkippedInput,
    StoreStatus,
    check_header,
    iter_dicom_inputs,
    plan_inputs,
    read_dicom_bytes,
    read_dicom_file,
)

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"


def make_sr(number: int = 1) -> Dataset:
    """A dose-report-like SR with what a DICOMDIR SR DOCUMENT record needs (PS3.3 F.5)."""
    ds = Dataset()
    ds.SOPClassUID = XRAY_DOSE_SR
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = "P1"
    ds.PatientName = "Test^Patient"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "101010", "1", "A1"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "SR", 1, number
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ContentDate, ds.ContentTime = "20240101", "101010"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator = "113701", "DCM"
    concept.CodeMeaning = "X-Ray Radiation Dose Report"
    ds.ConceptNameCodeSequence = [concept]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def encode(ds: Dataset, *, implicit: bool = False, little_endian: bool = True) -> bytes:
    """A data set without preamble or meta, as old equipment wrote it."""
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, little_endian
    write_dataset(buffer, ds)
    return buffer.getvalue()


def write_media(root: Path, count: int) -> list[Dataset]:
    """A DICOMDIR file-set as pydicom writes it (upper-case ISO 9660 names under PT000000/…)."""
    datasets = [make_sr(i + 1) for i in range(count)]
    file_set = FileSet()
    for ds in datasets:
        file_set.add(ds)
    file_set.write(root)
    return datasets


def objects(records: list[ReceivedObject | SkippedInput]) -> list[ReceivedObject]:
    return [r for r in records if isinstance(r, ReceivedObject)]


def skipped(records: list[ReceivedObject | SkippedInput]) -> dict[str, str]:
    return {r.path.name: r.reason for r in records if isinstance(r, SkippedInput)}


def test_folder_with_dicomdir_raw_files_and_junk(tmp_path: Path) -> None:
    media = tmp_path / "usb"
    datasets = write_media(media, 3)
    (media / "README.TXT").write_text("Exported by the modality\n")
    (media / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(range(256)))
    (media / "EMPTY").write_bytes(b"")
    (media / "junk").mkdir()
    (media / "junk" / "looks_like_a_tag.bin").write_bytes(b"\x08\x00\x16\x00" + b"\xff" * 40)
    raw = make_sr(9)
    (media / "junk" / "RAW_IMPLICIT").write_bytes(encode(raw, implicit=True))

    records = list(iter_dicom_inputs([media]))

    got = objects(records)
    uids = [o.sop_instance_uid for o in got]
    assert len(uids) == len(set(uids)), "a file reached twice (folder walk and DICOMDIR) was read twice"
    assert sorted(uids) == sorted([ds.SOPInstanceUID for ds in datasets] + [raw.SOPInstanceUID])
    reasons = skipped(records)
    assert set(reasons) == {"README.TXT", ".DS_Store", "EMPTY", "looks_like_a_tag.bin"}
    assert reasons["EMPTY"] == "empty file"
    assert reasons["README.TXT"].startswith("not DICOM")
    # Starts like a group 0008 element, so it is parsed, but names no SOP Instance.
    assert "SOP Class/Instance UID" in reasons["looks_like_a_tag.bin"]
    assert "DICOMDIR" not in {o.source_path.name for o in got if o.source_path}
    for obj in got:
        assert check_header(obj) is None, obj.source_path


def test_part10_files_are_kept_byte_for_byte(tmp_path: Path) -> None:
    write_media(tmp_path, 2)
    for obj in objects(list(iter_dicom_inputs([tmp_path / "DICOMDIR"]))):
        assert obj.source_path is not None
        assert obj.part10 == obj.source_path.read_bytes()
        assert obj.transfer_syntax_uid == ExplicitVRLittleEndian


def test_dicomdir_is_followed_in_record_order(tmp_path: Path) -> None:
    datasets = write_media(tmp_path, 3)
    planned = plan_inputs([tmp_path / "DICOMDIR"])
    assert len(planned) == 3
    # pydicom orders records by patient/study/series as it wrote them; the walker keeps that order.
    record_order = [str(pydicom.dcmread(path, specific_tags=["SOPInstanceUID"]).SOPInstanceUID) for path in planned]
    assert sorted(record_order) == sorted(ds.SOPInstanceUID for ds in datasets)
    assert [o.sop_instance_uid for o in objects(list(iter_dicom_inputs([tmp_path / "DICOMDIR"])))] == record_order


def test_dicomdir_references_resolve_case_insensitively(tmp_path: Path) -> None:
    datasets = write_media(tmp_path, 2)
    (tmp_path / "PT000000").rename(tmp_path / "pt000000")  # as a case-sensitive copy of a CD may look
    got = objects(list(iter_dicom_inputs([tmp_path / "DICOMDIR"])))
    assert sorted(o.sop_instance_uid for o in got) == sorted(ds.SOPInstanceUID for ds in datasets)
    assert all(o.source_path is not None and "pt000000" in o.source_path.parts for o in got)


def test_missing_referenced_file_is_reported(tmp_path: Path) -> None:
    write_media(tmp_path, 2)
    victim = plan_inputs([tmp_path / "DICOMDIR"])[1]
    victim.unlink()
    records = list(iter_dicom_inputs([tmp_path / "DICOMDIR"]))
    assert len(objects(records)) == 1
    assert skipped(records)[victim.name].startswith("cannot read")


def test_each_file_once_whatever_reaches_it(tmp_path: Path) -> None:
    write_media(tmp_path, 2)
    one_file = plan_inputs([tmp_path])[0]
    planned = plan_inputs([tmp_path, tmp_path / "DICOMDIR", one_file, tmp_path / "." / one_file.relative_to(tmp_path)])
    assert len(planned) == 2


@pytest.mark.parametrize(
    ("implicit", "little_endian", "syntax"),
    [(True, True, ImplicitVRLittleEndian), (False, True, ExplicitVRLittleEndian), (False, False, ExplicitVRBigEndian)],
)
def test_raw_data_set_is_wrapped_with_its_transfer_syntax(
    tmp_path: Path, implicit: bool, little_endian: bool, syntax: str
) -> None:
    ds = make_sr()
    raw = encode(ds, implicit=implicit, little_endian=little_endian)
    path = tmp_path / "IM0001"
    path.write_bytes(raw)

    obj = read_dicom_file(path)

    assert isinstance(obj, ReceivedObject)
    assert obj.transfer_syntax_uid == syntax
    assert obj.dataset_bytes == raw
    assert (obj.sop_class_uid, obj.sop_instance_uid) == (XRAY_DOSE_SR, ds.SOPInstanceUID)
    decoded = obj.read_dataset()
    assert decoded.file_meta.TransferSyntaxUID == syntax
    assert decoded.AccessionNumber == "A1" and decoded.ConceptNameCodeSequence[0].CodeValue == "113701"
    assert check_header(obj) is None


def test_dicm_without_preamble_is_wrapped(tmp_path: Path) -> None:
    ds = make_sr()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    without_preamble = buffer.getvalue()[128:]
    assert without_preamble.startswith(b"DICM")
    path = tmp_path / "nopreamble.dcm"
    path.write_bytes(without_preamble)

    obj = read_dicom_file(path)

    assert isinstance(obj, ReceivedObject)
    assert obj.part10[128:132] == b"DICM"
    assert obj.dataset_bytes == buffer.getvalue()[len(buffer.getvalue()) - len(obj.dataset_bytes) :]
    assert obj.read_dataset().SOPInstanceUID == ds.SOPInstanceUID


def test_stale_meta_loses_to_the_data_set_uids(tmp_path: Path) -> None:
    """Edited files often keep an old (0002,0003); the archive key must be the data set's UID."""
    ds = make_sr()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian  # the UID sits inside the deflate stream
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = tmp_path / "edited.dcm"
    ds.save_as(path, enforce_file_format=True)

    obj = read_dicom_file(path)

    assert isinstance(obj, ReceivedObject)
    assert obj.sop_instance_uid == ds.SOPInstanceUID != ds.file_meta.MediaStorageSOPInstanceUID
    assert obj.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    assert obj.part10 == path.read_bytes()
    assert check_header(obj) is None


def test_truncated_file_is_read_but_refused_by_the_header_check(tmp_path: Path) -> None:
    ds = make_sr()
    path = tmp_path / "cut.dcm"
    ds.save_as(path, enforce_file_format=True)
    path.write_bytes(path.read_bytes()[:-20])  # an interrupted copy

    obj = read_dicom_file(path)

    assert isinstance(obj, ReceivedObject), "kept, so the pipeline can quarantine it"
    outcome = check_header(obj)
    assert outcome is not None and outcome.status == StoreStatus.CANNOT_UNDERSTAND
    assert "truncated" in outcome.reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"%PDF-1.7 a report", "not DICOM"),
        (b"\x00" * 128 + b"DICM", "no data set"),
    ],
)
def test_bytes_that_are_not_importable_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(NotImportable, match=reason):
        read_dicom_bytes(data)


def test_broken_meta_and_directories_are_skipped(tmp_path: Path) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00" + b"1.2")
    assert isinstance(read_dicom_file(broken), SkippedInput)
    result = read_dicom_file(tmp_path)
    assert isinstance(result, SkippedInput) and result.reason.startswith("cannot read")


def test_every_sample_is_read_verbatim(samples_dir: Path) -> None:
    records = list(iter_dicom_inputs([samples_dir / "rdsr"]))
    got = objects(records)
    assert len(got) == 41
    assert set(skipped(records)) == {"SOURCES.md"}
    for obj in got:
        assert obj.source_path is not None
        assert obj.part10 == obj.source_path.read_bytes()
        dataset = pydicom.dcmread(obj.source_path, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        assert (obj.sop_class_uid, obj.sop_instance_uid) == (dataset.SOPClassUID, dataset.SOPInstanceUID)
        assert check_header(obj) is None, obj.source_path.name


def test_copied_sample_tree_with_duplicates(samples_dir: Path, tmp_path: Path) -> None:
    """A USB stick often holds the same report twice; both copies are offered, by path."""
    source = samples_dir / "rdsr" / "ct_siemens_flash_tap_ss.dcm"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(source, tmp_path / "a" / "x.dcm")
    shutil.copy(source, tmp_path / "b" / "x.dcm")
    got = objects(list(iter_dicom_inputs([tmp_path])))
    assert [o.source_path.parent.name for o in got if o.source_path] == ["a", "b"]
    assert got[0].sop_instance_uid == got[1].sop_instance_uid
