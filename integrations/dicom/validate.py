"""Cheap checks that a received data set is whole and is what the sender said it is.

pydicom is lenient on purpose: it reads a data set whose last value is cut short without a word,
and decodes garbage into odd elements. An archive must not answer "stored" to such input, so
:func:`check_header` walks the element structure (PS3.5 §7.1, §7.5: every length must fit, every
undefined-length sequence and item must be closed by its delimiter) before comparing the SOP
Class/Instance UID with the ones the object was sent as. It decodes no value except those two UIDs,
so it costs milliseconds where a full pydicom read of a large fluoroscopy report takes seconds.

A cut exactly between two top-level elements leaves a shorter data set that is still valid and
cannot be told from the encoding alone; over the network the P-DATA framing rules that case out.
"""

from __future__ import annotations

import zlib

from pydicom.uid import UID

from integrations.dicom.objects import (
    SOP_CLASS_UID_TAG,
    SOP_INSTANCE_UID_TAG,
    ReceivedObject,
    StoreOutcome,
    StoreStatus,
)

# Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1).
LONG_LENGTH_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD  # element numbers in group FFFE
_SOP_TAGS = frozenset({SOP_CLASS_UID_TAG, SOP_INSTANCE_UID_TAG})


class MalformedDataSet(ValueError):
    """The byte stream is not a complete data set; the message says where."""


class _Walker:
    """Walks the element structure of one data set without decoding values."""

    def __init__(self, data: bytes, *, little_endian: bool, wanted: frozenset[int]) -> None:
        self.data = data
        self.order: str = "little" if little_endian else "big"
        self.wanted = wanted
        self.found: dict[int, bytes] = {}  # raw values of wanted top-level elements

    def _uint(self, pos: int, size: int) -> int:
        if pos + size > len(self.data):
            raise MalformedDataSet(f"truncated inside an element header at byte {pos}")
        return int.from_bytes(self.data[pos : pos + size], self.order)  # type: ignore[arg-type]

    def elements(self, pos: int, *, implicit: bool, in_item: bool) -> int:
        """Walk elements from ``pos`` to the end (or to the item delimiter); return the end."""
        while pos < len(self.data):
            group, number = self._uint(pos, 2), self._uint(pos + 2, 2)
            if group == 0xFFFE:
                if in_item and number == _ITEM_END:
                    return pos + 8
                raise MalformedDataSet(f"unexpected delimiter (FFFE,{number:04X}) at byte {pos}")
            if implicit:
                vr, length, pos = b"", self._uint(pos + 4, 4), pos + 8
            else:
                vr = self.data[pos + 4 : pos + 6]
                if vr in LONG_LENGTH_VRS:
                    length, pos = self._uint(pos + 8, 4), pos + 12
                else:
                    length, pos = self._uint(pos + 6, 2), pos + 8
            if not in_item and (group << 16 | number) in self.wanted and length != _UNDEFINED:
                self.found[group << 16 | number] = self.data[pos : pos + length]
            if length == _UNDEFINED:
                # Sequence, or encapsulated pixel data; UN of undefined length is Implicit VR inside.
                pos = self.items(pos, implicit=implicit or vr == b"UN")
            elif pos + length > len(self.data):
                raise MalformedDataSet(
                    f"truncated: ({group:04X},{number:04X}) needs {length} bytes, {len(self.data) - pos} left"
                )
            else:
                pos += length
        if in_item:
            raise MalformedDataSet("truncated: undefined-length item is not closed")
        return pos

    def items(self, pos: int, *, implicit: bool) -> int:
        """Walk the items of an undefined-length sequence; return the position after its delimiter."""
        while True:
            group, number, length = self._uint(pos, 2), self._uint(pos + 2, 2), self._uint(pos + 4, 4)
            pos += 8
            if group != 0xFFFE or number not in (_ITEM, _SEQUENCE_END):
                raise MalformedDataSet(f"expected an item or sequence delimiter at byte {pos - 8}")
            if number == _SEQUENCE_END:
                return pos
            if length == _UNDEFINED:
                pos = self.elements(pos, implicit=implicit, in_item=True)
            elif pos + length > len(self.data):
                raise MalformedDataSet("truncated: sequence item runs past the end")
            else:
                pos += length


def check_structure(dataset: bytes, transfer_syntax_uid: str) -> dict[int, str]:
    """Walk the whole data set; return its top-level SOP Class and Instance UID by tag.

    Raises :class:`MalformedDataSet` unless ``dataset`` is a complete data set in that syntax.
    """
    syntax = UID(transfer_syntax_uid)
    if syntax.is_deflated:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, PS3.5 A.5
        try:
            dataset = inflater.decompress(dataset) + inflater.flush()
        except zlib.error as exc:
            raise MalformedDataSet(f"deflated data set does not inflate: {exc}") from exc
        if not inflater.eof:
            raise MalformedDataSet("truncated: deflated data set ends early")
    if not dataset:
        raise MalformedDataSet("empty data set")
    walker = _Walker(dataset, little_endian=syntax.is_little_endian, wanted=_SOP_TAGS)
    walker.elements(0, implicit=syntax.is_implicit_VR, in_item=False)
    # UI values are ASCII padded with NUL (PS3.5 6.2); a UID never needs another character set.
    return {tag: value.rstrip(b"\x00 ").decode("ascii", "replace") for tag, value in walker.found.items()}


def check_header(obj: ReceivedObject) -> StoreOutcome | None:
    """Check that the data set is whole and names the SOP Class/Instance it was sent as.

    Returns None when it does, otherwise the failure to answer with: ``CANNOT_UNDERSTAND`` (C000)
    for a truncated or structurally broken stream or one without SOP Class/Instance UID;
    ``DATASET_DOES_NOT_MATCH_SOP_CLASS`` (A900) when the data set's UIDs differ from those of the
    C-STORE command (network) or the File Meta Information (file). The pipeline calls this after
    archiving the original, so bad input is kept for inspection.
    """
    try:
        uids = check_structure(obj.dataset_bytes, obj.transfer_syntax_uid)
    except MalformedDataSet as exc:
        return StoreOutcome(StoreStatus.CANNOT_UNDERSTAND, str(exc))
    sop_class, sop_instance = uids.get(SOP_CLASS_UID_TAG), uids.get(SOP_INSTANCE_UID_TAG)
    if not sop_class or not sop_instance:
        return StoreOutcome(StoreStatus.CANNOT_UNDERSTAND, "data set has no SOP Class/Instance UID")
    if str(sop_class) != obj.sop_class_uid:
        return StoreOutcome(
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            f"data set is {sop_class}, sent as {obj.sop_class_uid}",
        )
    if str(sop_instance) != obj.sop_instance_uid:
        return StoreOutcome(
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            f"data set SOP Instance {sop_instance} differs from the one sent ({obj.sop_instance_uid})",
        )
    return None
