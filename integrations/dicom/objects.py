"""Records that DICOM receivers hand on, and the outcomes they expect back.

A received object is kept as the exact DICOM Part 10 stream (PS3.10 §7: 128-byte preamble, ``DICM``,
File Meta Information in Explicit VR Little Endian, then the data set in its own transfer syntax) so
the archive stores one self-describing file whether the object came over the network or from disk.
The data set bytes are never decoded and re-encoded on the way in: a mapping fix can later be re-run
over exactly what the modality sent.

Outcomes carry a DICOM status from a closed list (PS3.4 Annex B.2.3 for storage, PS3.4 F.7.2 and
PS3.7 Annex C for MPPS) plus a human reason, which goes into the log and the response's Error Comment.
"""

from __future__ import annotations

import enum
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import UID

# Implementation Class UID (PS3.7 D.3.3.2) for files DACS writes: a UUID-derived UID (PS3.5 B.2),
# generated once for this project and never changed.
DACS_IMPLEMENTATION_CLASS_UID = "2.25.82900507464345666777975674314022527931"
DACS_IMPLEMENTATION_VERSION_NAME = "DACS_0.1"  # SH, at most 16 characters

PREAMBLE = b"\x00" * 128
PREFIX = b"DICM"
SOP_CLASS_UID_TAG = Tag(0x0008, 0x0016)
SOP_INSTANCE_UID_TAG = Tag(0x0008, 0x0018)
_ERROR_COMMENT_MAX = 64  # Error Comment (0000,0902) is LO: at most 64 characters (PS3.5 Table 6.2-1)


class StoreStatus(enum.IntEnum):
    """C-STORE response statuses the receiver may send (PS3.4 Table B.2-1, PS3.7 Annex C)."""

    SUCCESS = 0x0000
    WARNING_COERCION_OF_DATA_ELEMENTS = 0xB000
    WARNING_ELEMENTS_DISCARDED = 0xB006
    WARNING_DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xB007
    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    PROCESSING_FAILURE = 0x0110
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    NOT_AUTHORIZED = 0x0124


class MppsStatus(enum.IntEnum):
    """N-CREATE / N-SET response statuses for Modality Performed Procedure Step (PS3.4 F.7.2)."""

    SUCCESS = 0x0000
    INVALID_ATTRIBUTE_VALUE = 0x0106
    # In MPPS N-SET, 0x0110 means "Performed Procedure Step object may no longer be updated"
    # (PS3.4 F.7.2.2.2); elsewhere it is the general processing failure.
    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    NO_SUCH_OBJECT_INSTANCE = 0x0112
    MISSING_ATTRIBUTE = 0x0120
    MISSING_ATTRIBUTE_VALUE = 0x0121
    RESOURCE_LIMITATION = 0x0213


@dataclass(frozen=True)
class StoreOutcome:
    """What the store callback decided; turned into the C-STORE response status.

    Return ``SUCCESS`` only once the object is durably committed: the modality may delete its copy
    when it sees it. Every other status needs a reason, which is logged and sent as Error Comment.
    """

    status: StoreStatus
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status is not StoreStatus.SUCCESS and not self.reason:
            raise ValueError(f"a {self.status.name} outcome needs a reason")

    @classmethod
    def success(cls, reason: str = "") -> StoreOutcome:
        return cls(StoreStatus.SUCCESS, reason)

    @property
    def is_failure(self) -> bool:
        """True for statuses the sender must treat as "not stored" (not success, not warning)."""
        return self.status is not StoreStatus.SUCCESS and (self.status >> 12) != 0xB


@dataclass(frozen=True)
class MppsOutcome:
    """What the MPPS callback decided; turned into the N-CREATE / N-SET response status."""

    status: MppsStatus
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status is not MppsStatus.SUCCESS and not self.reason:
            raise ValueError(f"a {self.status.name} outcome needs a reason")

    @classmethod
    def success(cls, reason: str = "") -> MppsOutcome:
        return cls(MppsStatus.SUCCESS, reason)


def error_comment(reason: str) -> str:
    """``reason`` made fit for Error Comment: LO in the command set's default repertoire (ASCII),
    at most 64 characters, no backslash (PS3.5 Table 6.2-1); the command set has no
    Specific Character Set."""
    text = " ".join(reason.replace("\\", "/").split()).encode("ascii", "replace").decode("ascii")
    return text if len(text) <= _ERROR_COMMENT_MAX else text[: _ERROR_COMMENT_MAX - 3] + "..."


def encode_part10_prefix(meta: FileMetaDataset) -> bytes:
    """Preamble, ``DICM`` and the encoded File Meta Information (group length computed)."""
    buffer = DicomBytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return PREAMBLE + PREFIX + buffer.getvalue()


def make_file_meta(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    *,
    sending_ae_title: str | None = None,
    receiving_ae_title: str | None = None,
) -> FileMetaDataset:
    """File Meta Information for an object DACS writes to its archive (PS3.10 Table 7.1-1).

    Sending/Receiving Application Entity Title (0002,0017)/(0002,0018) record where a network
    object came from, so the archived file keeps its provenance without a side table.
    """
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.ImplementationClassUID = UID(DACS_IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = DACS_IMPLEMENTATION_VERSION_NAME
    if sending_ae_title:
        meta.SendingApplicationEntityTitle = sending_ae_title
    if receiving_ae_title:
        meta.ReceivingApplicationEntityTitle = receiving_ae_title
    return meta


@dataclass(frozen=True)
class ReceivedObject:
    """One composite object as received (network) or read (file), ready for the archive.

    ``part10`` is a complete DICOM file; the data set part, ``part10[dataset_offset:]``, is byte for
    byte what the sender sent (or what the file held). ``sop_class_uid``/``sop_instance_uid`` come
    from the C-STORE command (network) or the File Meta Information (file); :func:`check_header`
    compares them with the data set's own.
    """

    part10: bytes = field(repr=False)
    dataset_offset: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    received_at: datetime
    calling_ae_title: str | None = None
    called_ae_title: str | None = None
    peer_address: str | None = None
    peer_port: int | None = None
    source_path: Path | None = None

    @property
    def dataset_bytes(self) -> bytes:
        """The data set exactly as received, in ``transfer_syntax_uid`` (deflated if that says so)."""
        return self.part10[self.dataset_offset :]

    @property
    def origin(self) -> str:
        """Where the object came from, for log lines: ``AE@host:port``, the file path, or the AE title
        kept in an archived file's meta."""
        if self.source_path is not None:
            return str(self.source_path)
        if self.peer_address is None:
            return f"{self.calling_ae_title or 'unknown AE'} (archived)"
        return f"{self.calling_ae_title}@{self.peer_address}:{self.peer_port}"

    def read_dataset(self, *, stop_before_pixels: bool = True) -> Dataset:
        """Decode the object with pydicom (raises on malformed input; the receiver never calls this)."""
        return pydicom.dcmread(io.BytesIO(self.part10), stop_before_pixels=stop_before_pixels)


class MppsOperation(enum.Enum):
    """The two MPPS DIMSE-N operations a modality sends (PS3.4 F.7)."""

    N_CREATE = "N-CREATE"
    N_SET = "N-SET"


@dataclass(frozen=True)
class MppsMessage:
    """An MPPS N-CREATE attribute list or N-SET modification list, as received.

    Wrapped as a Part 10 stream (Media Storage SOP Class = MPPS) like :class:`ReceivedObject`, so
    it can be archived and decoded the same way. ``uid_assigned_by_scp`` is True when the N-CREATE
    carried no Affected SOP Instance UID and the listener made one (PS3.7 10.1.5.1.4).
    """

    operation: MppsOperation
    part10: bytes = field(repr=False)
    dataset_offset: int
    sop_instance_uid: str
    transfer_syntax_uid: str
    received_at: datetime
    calling_ae_title: str
    called_ae_title: str
    peer_address: str
    peer_port: int
    uid_assigned_by_scp: bool = False

    def read_dataset(self) -> Dataset:
        """Decode the attribute/modification list with pydicom."""
        return pydicom.dcmread(io.BytesIO(self.part10))
