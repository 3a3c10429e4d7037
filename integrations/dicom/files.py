"""DICOM file input for ``dacs import``: files, folders and DICOMDIR media.

Sites without a network bring dose reports on USB sticks and CDs. The walker turns every input into
the same :class:`~integrations.dicom.objects.ReceivedObject` the network listener produces, so one
callback archives and maps both. It never decodes more than the few header elements it needs; the
data set bytes go to the archive untouched.

* Folders are walked recursively in sorted order (symbolic links to folders are not followed).
* A DICOMDIR (PS3.10 §8, Media Storage Directory SOP Class) is not an object to import: its
  directory records' Referenced File IDs are followed instead (ISO 9660 media often upper-cases
  names, so a case-insensitive match is tried when the exact path does not exist).
* A file appears at most once, however many inputs or DICOMDIRs reach it.
* Part 10 files with a preamble and complete File Meta Information are kept byte for byte. Files
  without preamble or meta (old "raw" data sets, or meta without preamble) are wrapped: a new File
  Meta Information is written in front of the original data set bytes, with the transfer syntax
  read from the meta or recognised from the first element (PS3.5 §7: the data set starts with its
  lowest tag, group 0008 for composite objects).
* Anything else is reported as :class:`SkippedInput` with the reason, never raised.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import VR

from integrations.dicom.objects import (
    PREAMBLE,
    PREFIX,
    SOP_INSTANCE_UID_TAG,
    ReceivedObject,
    encode_part10_prefix,
    make_file_meta,
)
from integrations.dicom.validate import LONG_LENGTH_VRS

MEDIA_STORAGE_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"  # DICOMDIR: Basic Directory IOD, PS3.3 F
_SNIFF_BYTES = 4096  # enough for preamble, prefix and any real File Meta Information
_VR_CODES = frozenset(vr.value.encode("ascii") for vr in VR)
_REQUIRED_META = ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")


@dataclass(frozen=True)
class SkippedInput:
    """An input path that is not importable, and why (shown in the import summary)."""

    path: Path
    reason: str


def plan_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every file the import will look at, in order, each once: folders and DICOMDIRs expanded.

    Cheap (reads only DICOMDIRs), so ``dacs import`` can size its progress bar before reading.
    """
    planned: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        if path.name.upper() == "DICOMDIR":
            referenced = _dicomdir_references(path)
            if referenced is not None:
                for ref in referenced:
                    add(ref)
                return
        planned.append(path)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for folder, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(filenames):
                    add(Path(folder) / name)
        else:
            add(path)
    return planned


def iter_dicom_inputs(paths: Iterable[str | os.PathLike[str]]) -> Iterator[ReceivedObject | SkippedInput]:
    """Yield one record per planned file: the object, or why it was skipped."""
    for path in plan_inputs(paths):
        yield read_dicom_file(path)


class NotImportable(ValueError):
    """The bytes are not a composite DICOM object DACS can archive; the message says why."""


def read_dicom_file(path: Path) -> ReceivedObject | SkippedInput:
    """Read one file as a :class:`ReceivedObject` (wrapping raw data sets), or say why not."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
            if not head:
                return SkippedInput(path, "empty file")
            if _meta_start(head) is None:  # decided before reading a large non-DICOM file whole
                return SkippedInput(path, "not DICOM: no DICM prefix and no data set at the start")
            data = head + handle.read()
    except OSError as exc:
        return SkippedInput(path, f"cannot read: {exc.strerror or exc}")
    try:
        return read_dicom_bytes(data, source_path=path)
    except NotImportable as exc:
        return SkippedInput(path, str(exc))


def read_dicom_bytes(data: bytes, *, source_path: Path | None = None) -> ReceivedObject:
    """The object in ``data`` (a Part 10 file or a raw data set), as :func:`read_dicom_file` reads it.

    For re-reading the archive (``dacs remap``): a Part 10 stream the listener wrote keeps its
    provenance, since Sending/Receiving AE Title (0002,0017)/(0002,0018) come back as
    ``calling_ae_title``/``called_ae_title``. Raises :class:`NotImportable` with the reason.
    """
    if not data:
        raise NotImportable("empty file")
    start = _meta_start(data)
    if start is None:
        raise NotImportable("not DICOM: no DICM prefix and no data set at the start")
    meta_end = _meta_end(data, start)
    meta = _decode_meta(data, start, meta_end)
    if meta is None:
        raise NotImportable("unreadable File Meta Information")
    if meta.get("MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY_SOP_CLASS:
        raise NotImportable("DICOMDIR that could not be read as a directory")
    dataset = data[meta_end:]
    if not dataset:
        raise NotImportable("no data set after the File Meta Information")

    transfer_syntax = str(meta.get("TransferSyntaxUID") or "") or _recognise_syntax(dataset)
    if transfer_syntax is None:
        raise NotImportable("not DICOM: data set starts with no recognisable element")
    # The data set's own UIDs win over the meta's: edited files often keep a stale meta.
    try:
        sop_class, sop_instance = _read_sop_uids(dataset, transfer_syntax)
    except Exception as exc:  # pydicom raises many types on garbage
        raise NotImportable(f"not DICOM: data set does not decode ({type(exc).__name__}: {exc})") from exc
    sop_class = sop_class or str(meta.get("MediaStorageSOPClassUID") or "")
    sop_instance = sop_instance or str(meta.get("MediaStorageSOPInstanceUID") or "")
    if not (sop_class and sop_instance):
        raise NotImportable("no SOP Class/Instance UID: not a composite object")

    if start == len(PREAMBLE) + len(PREFIX) and all(meta.get(k) for k in _REQUIRED_META):
        part10, offset = data, meta_end  # a proper Part 10 file: kept exactly as it is
    else:
        prefix = encode_part10_prefix(make_file_meta(sop_class, sop_instance, transfer_syntax))
        part10, offset = prefix + dataset, len(prefix)
    return ReceivedObject(
        part10=part10,
        dataset_offset=offset,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        transfer_syntax_uid=transfer_syntax,
        received_at=datetime.now(UTC),
        calling_ae_title=str(meta.get("SendingApplicationEntityTitle") or "").strip() or None,
        called_ae_title=str(meta.get("ReceivingApplicationEntityTitle") or "").strip() or None,
        source_path=source_path,
    )


def _meta_start(head: bytes) -> int | None:
    """Offset after the preamble and/or ``DICM``; 0 for a raw data set; None if not DICOM-like."""
    if head[128:132] == PREFIX:
        return 132
    if head[:4] == PREFIX:
        return 4
    if head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08"):  # meta or data set group, LE or BE
        return 0
    return None


def _meta_end(data: bytes, pos: int) -> int:
    """Offset just past the group 0002 elements starting at ``pos`` (none: ``pos`` itself).

    Walks the elements rather than trusting (0002,0000), which some writers get wrong; accepts
    meta written in Implicit VR too (non-conformant but seen).
    """
    while pos + 8 <= len(data) and data[pos : pos + 2] == b"\x02\x00":
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_LENGTH_VRS:
            length = int.from_bytes(data[pos + 8 : pos + 12], "little")
            pos += 12 + length
        elif vr in _VR_CODES:
            pos += 8 + int.from_bytes(data[pos + 6 : pos + 8], "little")
        else:
            pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
    return min(pos, len(data))


def _decode_meta(data: bytes, start: int, end: int) -> FileMetaDataset | None:
    """The File Meta Information between ``start`` and ``end`` (empty when there is none)."""
    if end == start:
        return FileMetaDataset()
    try:
        return pydicom.dcmread(io.BytesIO(PREAMBLE + PREFIX + data[start:end])).file_meta
    except Exception:  # malformed meta: report, never raise
        return None


def _recognise_syntax(dataset: bytes) -> str | None:
    """Transfer syntax of a data set without meta, from its first element (group 0008)."""
    if len(dataset) < 8:
        return None
    explicit = dataset[4:6] in _VR_CODES
    if dataset[:2] == b"\x08\x00":
        return ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
    if dataset[:2] == b"\x00\x08" and explicit:
        return ExplicitVRBigEndian
    return None


def _read_sop_uids(dataset: bytes, transfer_syntax: str) -> tuple[str, str]:
    """SOP Class and Instance UID from the data set, reading no further than (0008,0018)."""
    syntax = UID(transfer_syntax)
    if syntax == DeflatedExplicitVRLittleEndian:
        dataset = zlib.decompressobj(-zlib.MAX_WBITS).decompress(dataset, 1 << 16)  # raw deflate, PS3.5 A.5
    elif not syntax.is_transfer_syntax or syntax.is_deflated:
        raise ValueError(f"unknown transfer syntax {transfer_syntax}")
    ds: Dataset = read_dataset(
        io.BytesIO(dataset),
        is_implicit_VR=syntax.is_implicit_VR,
        is_little_endian=syntax.is_little_endian,
        stop_when=lambda tag, vr, length: tag > SOP_INSTANCE_UID_TAG,
    )
    return str(ds.get("SOPClassUID", "") or ""), str(ds.get("SOPInstanceUID", "") or "")


def _dicomdir_references(path: Path) -> list[Path] | None:
    """Files referenced by a DICOMDIR's directory records, or None if it is not a readable DICOMDIR."""
    try:
        ds = pydicom.dcmread(path)
    except Exception:
        return None
    if ds.file_meta.get("MediaStorageSOPClassUID") != MEDIA_STORAGE_DIRECTORY_SOP_CLASS:
        return None
    references = []
    for record in ds.get("DirectoryRecordSequence", []):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        references.append(_resolve_case_insensitive(path.parent, parts))
    return references


def _resolve_case_insensitive(root: Path, parts: list[str]) -> Path:
    """``root/parts…``, matching each component case-insensitively when the exact name is absent."""
    current = root
    for part in parts:
        exact = current / part
        if not exact.exists() and current.is_dir():
            matches = [entry for entry in current.iterdir() if entry.name.upper() == part.upper()]
            if matches:
                exact = matches[0]
        current = exact
    return current
