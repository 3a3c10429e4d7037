"""The DICOM listener over real sockets, with real clients (DCMTK and pynetdicom).

Every RDSR sample goes through the network path with DCMTK ``storescu`` and pynetdicom's
``storescu`` app and must arrive with the same content; a raw (undecoded) send must arrive byte for
byte. Callback outcomes must reach the client as DICOM statuses, and be logged.
"""

from __future__ import annotations

import errno
import functools
import io
import logging
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_partial
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.dsutils import split_dataset

from integrations.dicom import (
    DicomListener,
    DicomListenerConfig,
    MppsMessage,
    MppsOperation,
    MppsOutcome,
    MppsStatus,
    ReceivedObject,
    StoreOutcome,
    StoreStatus,
    check_header,
    read_dicom_bytes,
)
from integrations.dicom.listener import DOSE_SR_STORAGE_CLASSES, MODALITY_PERFORMED_PROCEDURE_STEP

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
LISTENER_LOGGER = "integrations.dicom.listener"

needs_dcmtk = pytest.mark.skipif(
    shutil.which("storescu") is None or shutil.which("echoscu") is None,
    reason="DCMTK storescu/echoscu not installed (see .ci/system-deps)",
)


@dataclass
class Recorder:
    """Callbacks that keep what they receive; ``respond`` decides the store outcome."""

    respond: Callable[[ReceivedObject], StoreOutcome] = lambda obj: StoreOutcome.success()
    respond_mpps: Callable[[MppsMessage], MppsOutcome] = lambda msg: MppsOutcome.success()
    objects: list[ReceivedObject] = field(default_factory=list)
    mpps: list[MppsMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_object(self, obj: ReceivedObject) -> StoreOutcome:
        with self.lock:
            self.objects.append(obj)
        return self.respond(obj)

    def on_mpps(self, msg: MppsMessage) -> MppsOutcome:
        with self.lock:
            self.mpps.append(msg)
        return self.respond_mpps(msg)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def listener(recorder: Recorder) -> Iterator[DicomListener]:
    config = DicomListenerConfig(ae_title="DACS", host="127.0.0.1", port=0)
    with DicomListener(config, recorder.on_object, recorder.on_mpps) as running:
        yield running


@dataclass(frozen=True)
class Sample:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str  # the data set's own (some files carry a stale meta)
    dataset_offset: int  # where the data set starts in the file


@pytest.fixture(scope="module")
def rdsr_files(samples_dir: Path) -> dict[str, Sample]:
    """Every sample RDSR by the SOP Instance UID in its data set."""
    files = {}
    for path in sorted((samples_dir / "rdsr").glob("*.dcm")):
        ds = pydicom.dcmread(path, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        _, offset = split_dataset(path)
        files[str(ds.SOPInstanceUID)] = Sample(path, str(ds.SOPClassUID), str(ds.SOPInstanceUID), offset)
    assert len(files) == 41, "the sample corpus should hold 41 RDSR files"
    return files


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)


def flatten(ds: Dataset, path: tuple[tuple[int, int], ...] = ()) -> Iterator[tuple[object, ...]]:
    """Every element as (position, tag, VR, value), sequences unrolled: a fast deep comparison."""
    for elem in ds:
        if elem.VR == "SQ":
            yield path, elem.tag, "SQ", len(elem.value)
            for index, item in enumerate(elem.value):
                yield from flatten(item, (*path, (elem.tag, index)))
        else:
            yield path, elem.tag, elem.VR, elem.value


@functools.cache
def flat_file(path: Path) -> list[tuple[object, ...]]:
    """The file's elements, flattened once per test session (decoding is the slow part)."""
    return list(flatten(pydicom.dcmread(path)))


def assert_same_content(received: ReceivedObject, sample: Sample) -> None:
    """The received object is a Part 10 stream holding the file's data set (same elements).

    Clients may re-encode (DCMTK turns undefined lengths into explicit ones, or Big Endian into
    Little Endian), so unless the bytes are identical both sides are decoded and compared element
    by element.
    """
    assert received.part10[128:132] == b"DICM"
    meta = read_partial(io.BytesIO(received.part10), stop_when=lambda *_: True).file_meta
    assert meta.TransferSyntaxUID == received.transfer_syntax_uid
    assert meta.MediaStorageSOPInstanceUID == received.sop_instance_uid == sample.sop_instance_uid
    assert received.sop_class_uid == sample.sop_class_uid
    expected_bytes = sample.path.read_bytes()[sample.dataset_offset :]
    if received.dataset_bytes != expected_bytes:
        got = list(flatten(received.read_dataset(stop_before_pixels=False)))
        assert got == flat_file(sample.path), f"{sample.path.name}: decoded data set differs from the file"


def sample_meta_and_offset(path: Path) -> tuple[Dataset, int]:
    """The file's meta information and where its data set starts (read by pynetdicom)."""
    return split_dataset(path)


def raw_store(port: int, paths: list[Path], calling: str = "RAWSCU") -> list[Dataset]:
    """Send files with pynetdicom without decoding them (the data set bytes go out as stored)."""
    ae = AE(ae_title=calling)
    metas = [sample_meta_and_offset(path)[0] for path in paths]
    for sop_class, syntax in sorted({(m.MediaStorageSOPClassUID, m.TransferSyntaxUID) for m in metas}):
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title="DACS")
    assert assoc.is_established
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        statuses = [assoc.send_c_store(path) for path in paths]
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
        assoc.release()
    return statuses


def store_dataset(port: int, ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> Dataset:
    """C-STORE a pydicom data set with a pynetdicom SCU; returns the response status data set."""
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ds.SOPClassUID, syntax)
    ds.file_meta.TransferSyntaxUID = UID(syntax)  # pynetdicom picks the context from this
    assoc = ae.associate("127.0.0.1", port, ae_title="DACS")
    assert assoc.is_established
    try:
        return assoc.send_c_store(ds)
    finally:
        assoc.release()


def make_sr(sop_class: str = XRAY_DOSE_SR) -> Dataset:
    """A small SR-like data set (enough for a C-STORE; the listener does not map)."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.PatientID = "P1"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


# -- every sample, three clients --------------------------------------------------------------


@needs_dcmtk
def test_all_samples_arrive_intact_from_dcmtk_storescu(
    listener: DicomListener, recorder: Recorder, rdsr_files: dict[str, Sample], samples_dir: Path
) -> None:
    result = run(
        "storescu", "-R", "+sd", "-nh", "-aet", "MODALITY", "-aec", "DACS",
        "127.0.0.1", str(listener.port), str(samples_dir / "rdsr"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(o.sop_instance_uid for o in recorder.objects) == sorted(rdsr_files)
    for obj in recorder.objects:
        assert (obj.calling_ae_title, obj.called_ae_title, obj.peer_address) == ("MODALITY", "DACS", "127.0.0.1")
        assert_same_content(obj, rdsr_files[obj.sop_instance_uid])


def test_all_samples_arrive_intact_from_pynetdicom_storescu(
    listener: DicomListener, recorder: Recorder, rdsr_files: dict[str, Sample], samples_dir: Path
) -> None:
    result = run(
        sys.executable, "-m", "pynetdicom", "storescu", "-cx", "-aet", "PYNETDICOM", "-aec", "DACS",
        "127.0.0.1", str(listener.port), str(samples_dir / "rdsr"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(o.sop_instance_uid for o in recorder.objects) == sorted(rdsr_files)
    for obj in recorder.objects:
        assert obj.calling_ae_title == "PYNETDICOM"
        assert_same_content(obj, rdsr_files[obj.sop_instance_uid])


def test_undecoded_send_arrives_byte_for_byte(
    listener: DicomListener, recorder: Recorder, rdsr_files: dict[str, Sample]
) -> None:
    paths = [sample.path for sample in rdsr_files.values()]
    statuses = raw_store(listener.port, paths)
    assert [s.Status for s in statuses] == [0x0000] * len(paths)
    assert len(recorder.objects) == len(paths)
    for path, obj in zip(paths, recorder.objects, strict=True):
        meta, offset = sample_meta_and_offset(path)
        # The command carries the file meta's UIDs; the data set is the file's, byte for byte.
        assert obj.sop_instance_uid == meta.MediaStorageSOPInstanceUID
        assert obj.transfer_syntax_uid == meta.TransferSyntaxUID
        assert obj.dataset_bytes == path.read_bytes()[offset:], path.name
        assert obj.calling_ae_title == "RAWSCU"


@needs_dcmtk
@pytest.mark.parametrize(
    ("option", "syntax"),
    [
        ("-xi", ImplicitVRLittleEndian),
        ("-xe", ExplicitVRLittleEndian),
        ("-xd", DeflatedExplicitVRLittleEndian),
    ],
)
def test_dcmtk_transfer_syntax_choices_are_accepted(
    option: str,
    syntax: str,
    listener: DicomListener,
    recorder: Recorder,
    rdsr_files: dict[str, Sample],
) -> None:
    sample = next(iter(rdsr_files.values()))
    result = run("storescu", option, "-aec", "DACS", "127.0.0.1", str(listener.port), str(sample.path))
    assert result.returncode == 0, result.stderr
    [obj] = recorder.objects
    assert obj.transfer_syntax_uid == syntax
    assert_same_content(obj, sample)


@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRLittleEndian],
)
def test_sr_accepted_in_every_uncompressed_transfer_syntax(
    syntax: str, listener: DicomListener, recorder: Recorder
) -> None:
    ds = make_sr()
    ds.ContentSequence = [make_sr()]  # nested items must survive every encoding too
    assert store_dataset(listener.port, ds, syntax).Status == 0x0000
    [obj] = recorder.objects
    assert obj.transfer_syntax_uid == syntax
    decoded = obj.read_dataset()
    assert list(flatten(decoded)) == list(flatten(ds))


def test_every_dose_sr_class_is_accepted(listener: DicomListener, recorder: Recorder) -> None:
    for sop_class in DOSE_SR_STORAGE_CLASSES:
        assert store_dataset(listener.port, make_sr(sop_class)).Status == 0x0000
    assert [o.sop_class_uid for o in recorder.objects] == list(DOSE_SR_STORAGE_CLASSES)


def test_image_for_legacy_header_dose_is_accepted(listener: DicomListener, recorder: Recorder) -> None:
    ds = make_sr(CT_IMAGE)
    ds.Modality = "CT"
    ds.CTDIvol = 12.5  # FD
    assert store_dataset(listener.port, ds).Status == 0x0000
    assert recorder.objects[0].read_dataset().CTDIvol == 12.5


# -- outcomes become statuses -----------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        StoreStatus.OUT_OF_RESOURCES,
        StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
        StoreStatus.CANNOT_UNDERSTAND,
        StoreStatus.PROCESSING_FAILURE,
        StoreStatus.WARNING_COERCION_OF_DATA_ELEMENTS,
    ],
)
def test_callback_outcome_becomes_status_with_reason(
    status: StoreStatus, listener: DicomListener, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.respond = lambda obj: StoreOutcome(status, f"test reason for {obj.sop_instance_uid[-6:]}")
    ds = make_sr()
    with caplog.at_level(logging.INFO, logger=LISTENER_LOGGER):
        response = store_dataset(listener.port, ds)
    assert response.Status == status
    assert response.ErrorComment == f"test reason for {ds.SOPInstanceUID[-6:]}"
    [line] = [r for r in caplog.records if r.name == LISTENER_LOGGER and ds.SOPInstanceUID in r.getMessage()]
    assert f"0x{status:04X}" in line.getMessage() and "test reason" in line.getMessage()
    assert line.levelno == (logging.WARNING if status >> 12 == 0xB else logging.ERROR)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), StoreStatus.OUT_OF_RESOURCES),
        (MemoryError(), StoreStatus.OUT_OF_RESOURCES),
        (RuntimeError("database is locked"), StoreStatus.PROCESSING_FAILURE),
        (OSError(errno.EACCES, "Permission denied"), StoreStatus.PROCESSING_FAILURE),
    ],
)
def test_callback_exception_becomes_failure_status(
    error: BaseException,
    status: StoreStatus,
    listener: DicomListener,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(obj: ReceivedObject) -> StoreOutcome:
        raise error

    recorder.respond = fail
    with caplog.at_level(logging.INFO, logger=LISTENER_LOGGER):
        response = store_dataset(listener.port, make_sr())
    assert response.Status == status
    assert type(error).__name__ in response.ErrorComment
    assert any(r.exc_info and r.exc_info[1] is error for r in caplog.records), "traceback not logged"


def test_callback_returning_wrong_type_is_a_processing_failure(listener: DicomListener, recorder: Recorder) -> None:
    recorder.respond = lambda obj: 0x0000  # type: ignore[assignment,return-value]
    assert store_dataset(listener.port, make_sr()).Status == StoreStatus.PROCESSING_FAILURE


@needs_dcmtk
def test_dcmtk_storescu_sees_the_failure(
    listener: DicomListener, recorder: Recorder, rdsr_files: dict[str, Sample]
) -> None:
    recorder.respond = lambda obj: StoreOutcome(StoreStatus.OUT_OF_RESOURCES, "archive disk full")
    sample = next(iter(rdsr_files.values()))
    result = run("storescu", "-v", "-aec", "DACS", "127.0.0.1", str(listener.port), str(sample.path))
    assert result.returncode != 0
    assert "Refused: OutOfResources" in result.stdout + result.stderr
    assert len(recorder.objects) == 1


def test_pynetdicom_storescu_sees_the_failure(
    listener: DicomListener, recorder: Recorder, rdsr_files: dict[str, Sample]
) -> None:
    recorder.respond = lambda obj: StoreOutcome(StoreStatus.CANNOT_UNDERSTAND, "unparseable")
    sample = next(iter(rdsr_files.values()))
    result = run(
        sys.executable, "-m", "pynetdicom", "storescu", "-v", "-cx", "-aec", "DACS",
        "127.0.0.1", str(listener.port), str(sample.path),
    )  # fmt: skip
    assert "Status: 0xC000 - Failure" in result.stdout + result.stderr


# -- malformed objects and unsupported classes ------------------------------------------------


def write_part10(path: Path, sop_class: str, sop_instance: str, syntax: str, dataset_bytes: bytes) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(syntax)
    buffer = pydicom.filebase.DicomBytesIO()
    pydicom.filewriter.write_file_meta_info(buffer, meta)
    path.write_bytes(b"\x00" * 128 + b"DICM" + buffer.getvalue() + dataset_bytes)
    return path


def encode(ds: Dataset) -> bytes:
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(buffer, ds)
    return buffer.getvalue()


def test_malformed_object_is_handed_over_verbatim_and_refused(
    listener: DicomListener, recorder: Recorder, tmp_path: Path
) -> None:
    recorder.respond = lambda obj: check_header(obj) or StoreOutcome.success()
    ds = make_sr()
    truncated = encode(ds)[:-7]  # the last element's value is cut short
    garbage = b"\x08\x00\x16\x00UI\xff\x7fnot really a data set"
    paths = [
        write_part10(tmp_path / "t.dcm", XRAY_DOSE_SR, ds.SOPInstanceUID, ExplicitVRLittleEndian, truncated),
        write_part10(tmp_path / "g.dcm", XRAY_DOSE_SR, generate_uid(), ExplicitVRLittleEndian, garbage),
    ]
    statuses = raw_store(listener.port, paths)
    assert [s.Status for s in statuses] == [StoreStatus.CANNOT_UNDERSTAND] * 2
    assert "truncated" in statuses[0].ErrorComment
    assert [o.dataset_bytes for o in recorder.objects] == [truncated, garbage]


def test_data_set_of_another_class_is_refused_as_mismatch(
    listener: DicomListener, recorder: Recorder, tmp_path: Path
) -> None:
    recorder.respond = lambda obj: check_header(obj) or StoreOutcome.success()
    ds = make_sr(CT_IMAGE)  # the data set says CT image; the command will say dose SR
    path = write_part10(tmp_path / "m.dcm", XRAY_DOSE_SR, ds.SOPInstanceUID, ExplicitVRLittleEndian, encode(ds))
    [status] = raw_store(listener.port, [path])
    assert status.Status == StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert CT_IMAGE in status.ErrorComment


def test_unsupported_sop_class_is_not_negotiated(listener: DicomListener, recorder: Recorder) -> None:
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(MR_IMAGE, ExplicitVRLittleEndian)
    ae.add_requested_context(XRAY_DOSE_SR, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="DACS")
    try:
        assert [cx.abstract_syntax for cx in assoc.rejected_contexts] == [MR_IMAGE]
        with pytest.raises(ValueError, match="presentation context"):
            assoc.send_c_store(make_sr(MR_IMAGE))
    finally:
        assoc.release()
    assert recorder.objects == []


@needs_dcmtk
def test_dcmtk_reports_unsupported_sop_class(listener: DicomListener, recorder: Recorder, tmp_path: Path) -> None:
    ds = make_sr(MR_IMAGE)
    path = write_part10(tmp_path / "mr.dcm", MR_IMAGE, ds.SOPInstanceUID, ExplicitVRLittleEndian, encode(ds))
    result = run("storescu", "-R", "-aec", "DACS", "127.0.0.1", str(listener.port), str(path))
    assert result.returncode != 0
    assert "No presentation context" in result.stderr or "No Acceptable Presentation Contexts" in result.stderr
    assert recorder.objects == []


# -- association control ----------------------------------------------------------------------


@needs_dcmtk
def test_c_echo_with_echoscu(listener: DicomListener) -> None:
    result = run("echoscu", "-aec", "DACS", "127.0.0.1", str(listener.port))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def guarded_listener(recorder: Recorder) -> Iterator[DicomListener]:
    config = DicomListenerConfig(
        host="127.0.0.1", port=0, accepted_calling_ae_titles=frozenset({"CT_ROOM_1", "FLUORO "})
    )
    with DicomListener(config, recorder.on_object) as running:
        yield running


@needs_dcmtk
def test_unknown_calling_ae_is_rejected(
    guarded_listener: DicomListener, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    port = str(guarded_listener.port)
    with caplog.at_level(logging.INFO, logger=LISTENER_LOGGER):
        rejected = run("echoscu", "-aet", "INTRUDER", "-aec", "DACS", "127.0.0.1", port)
    assert rejected.returncode != 0
    assert "Calling AE Title Not Recognized" in rejected.stderr
    assert any("INTRUDER" in r.getMessage() and "not recognised" in r.getMessage() for r in caplog.records)
    assert run("echoscu", "-aet", "CT_ROOM_1", "-aec", "DACS", "127.0.0.1", port).returncode == 0
    assert run("echoscu", "-aet", "FLUORO", "-aec", "DACS", "127.0.0.1", port).returncode == 0


def test_rejection_reason_is_calling_ae_title_not_recognised(guarded_listener: DicomListener) -> None:
    ae = AE(ae_title="INTRUDER")
    ae.add_requested_context(XRAY_DOSE_SR)
    assoc = ae.associate("127.0.0.1", guarded_listener.port, ae_title="DACS")
    assert assoc.is_rejected
    # PS3.8 Table 9-21: result 1 rejected-permanent, source 1 service-user, reason 3.
    rj = assoc.acceptor.primitive
    assert rj is not None
    assert (rj.result, rj.result_source, rj.diagnostic) == (1, 1, 3)


def test_port_zero_binds_a_free_port_and_stop_releases_it(recorder: Recorder) -> None:
    listener = DicomListener(DicomListenerConfig(host="127.0.0.1", port=0), recorder.on_object)
    with pytest.raises(RuntimeError):
        _ = listener.port
    port = listener.start()
    assert port > 0 and listener.port == port
    with pytest.raises(RuntimeError):
        listener.start()
    listener.stop()
    listener.stop()  # idempotent
    ae = AE()
    ae.add_requested_context(XRAY_DOSE_SR)
    assert not ae.associate("127.0.0.1", port, ae_title="DACS").is_established


# -- MPPS -------------------------------------------------------------------------------------


def mpps_in_progress() -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepID = "PPS1"
    ds.Modality = "CT"
    ds.PatientID = "P1"
    item = Dataset()
    item.StudyInstanceUID = generate_uid()
    item.AccessionNumber = "ACC1"
    ds.ScheduledStepAttributesSequence = [item]
    return ds


def mpps_completed() -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.EntranceDoseInmGy = "1.5"
    ds.CommentsOnRadiationDose = "DLP 724.52 mGy.cm"
    return ds


def mpps_association(port: int) -> Association:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(MODALITY_PERFORMED_PROCEDURE_STEP)
    return ae.associate("127.0.0.1", port, ae_title="DACS")


def test_mpps_create_and_set_reach_the_callback(listener: DicomListener, recorder: Recorder) -> None:
    assoc = mpps_association(listener.port)
    uid = generate_uid()
    try:
        created, _ = assoc.send_n_create(mpps_in_progress(), MODALITY_PERFORMED_PROCEDURE_STEP, uid)
        updated, _ = assoc.send_n_set(mpps_completed(), MODALITY_PERFORMED_PROCEDURE_STEP, uid)
    finally:
        assoc.release()
    assert (created.Status, updated.Status) == (0x0000, 0x0000)
    create, update = recorder.mpps
    assert (create.operation, update.operation) == (MppsOperation.N_CREATE, MppsOperation.N_SET)
    assert create.sop_instance_uid == update.sop_instance_uid == uid
    assert not create.uid_assigned_by_scp
    assert create.read_dataset().ScheduledStepAttributesSequence[0].AccessionNumber == "ACC1"
    assert update.read_dataset().EntranceDoseInmGy == 1.5
    assert create.calling_ae_title == "MODALITY"


def test_mpps_create_without_uid_gets_one_from_the_scp(listener: DicomListener, recorder: Recorder) -> None:
    responses: list[Dataset] = []
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(MODALITY_PERFORMED_PROCEDURE_STEP)
    assoc = ae.associate(
        "127.0.0.1",
        listener.port,
        ae_title="DACS",
        evt_handlers=[(evt.EVT_DIMSE_RECV, lambda event: responses.append(event.message.command_set))],
    )
    try:
        status, _ = assoc.send_n_create(mpps_in_progress(), MODALITY_PERFORMED_PROCEDURE_STEP)
    finally:
        assoc.release()
    [message] = recorder.mpps
    assert status.Status == 0x0000
    assert message.uid_assigned_by_scp
    assert responses[0].AffectedSOPInstanceUID == message.sop_instance_uid


def test_mpps_outcome_and_exceptions_become_statuses(listener: DicomListener, recorder: Recorder) -> None:
    outcomes = iter(
        [
            MppsOutcome(MppsStatus.DUPLICATE_SOP_INSTANCE, "already created"),
            MppsOutcome(MppsStatus.PROCESSING_FAILURE, "step is COMPLETED and may no longer be updated"),
        ]
    )
    recorder.respond_mpps = lambda msg: next(outcomes)  # the third call raises StopIteration
    assoc = mpps_association(listener.port)
    uid = generate_uid()
    try:
        duplicate, _ = assoc.send_n_create(mpps_in_progress(), MODALITY_PERFORMED_PROCEDURE_STEP, uid)
        closed, _ = assoc.send_n_set(mpps_completed(), MODALITY_PERFORMED_PROCEDURE_STEP, uid)
        crashed, _ = assoc.send_n_set(mpps_completed(), MODALITY_PERFORMED_PROCEDURE_STEP, uid)
    finally:
        assoc.release()
    assert duplicate.Status == 0x0111 and duplicate.ErrorComment == "already created"
    assert closed.Status == 0x0110 and "no longer be updated" in closed.ErrorComment
    assert crashed.Status == 0x0110 and "StopIteration" in crashed.ErrorComment


def test_mpps_not_offered_without_a_callback(recorder: Recorder) -> None:
    config = DicomListenerConfig(host="127.0.0.1", port=0)
    with DicomListener(config, recorder.on_object) as running:
        assoc = mpps_association(running.port)
        try:
            assert [cx.abstract_syntax for cx in assoc.rejected_contexts] == [MODALITY_PERFORMED_PROCEDURE_STEP]
        finally:
            assoc.release()


def test_archived_object_reads_back_with_its_provenance(listener: DicomListener, recorder: Recorder) -> None:
    """``dacs remap`` re-reads the archive: the Part 10 bytes the listener made must round-trip."""
    ds = make_sr()
    assert store_dataset(listener.port, ds, ImplicitVRLittleEndian).Status == 0x0000
    [original] = recorder.objects
    again = read_dicom_bytes(original.part10)
    assert again.part10 == original.part10
    assert (again.sop_class_uid, again.sop_instance_uid) == (XRAY_DOSE_SR, ds.SOPInstanceUID)
    assert (again.calling_ae_title, again.called_ae_title) == ("PYSCU", "DACS")
    assert again.transfer_syntax_uid == ImplicitVRLittleEndian
