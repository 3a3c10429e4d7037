"""The SR content tree of a dose report as small immutable records (PS3.3 C.17.3, SR Document Content).

``read_content_tree(ds)`` turns the dataset's ContentSequence into :class:`ContentItem` records that the
template parsers walk. Two readers produce the same records:

* a direct reader of the still-encoded ContentSequence bytes (pydicom keeps a top-level sequence
  encoded until it is first accessed). It only looks at the dozen attributes an SR content item has,
  which is several times faster than materialising every nested pydicom ``Dataset``;
* a walk of pydicom ``Dataset`` objects, used when the sequence was already decoded (a dataset built
  in memory, or one a caller already inspected).

The tests check that both readers give identical trees for every sample.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom.charset import decode_bytes
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from mappings.rdsr.errors import MalformedReportError


@dataclass(frozen=True, slots=True)
class Code:
    """A coded concept: (CodeValue, CodingSchemeDesignator) identify it; the meaning is display only."""

    value: str
    scheme: str
    meaning: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """(value, scheme): the only thing DACS compares codes by."""
        return (self.value, self.scheme)


@dataclass(frozen=True, slots=True)
class ContentItem:
    """One SR content item with the value fields its ValueType uses.

    ``text`` holds TEXT, UIDREF, DATETIME, DATE, TIME and PNAME values (as decoded strings); ``code``
    the CODE value; ``number_text`` and ``unit`` the first MeasuredValueSequence item of a NUM
    (``has_measured_value`` is False when that sequence is empty or missing, which several vendors do
    instead of omitting the item). ``numbers`` and ``number_error`` are filled by the normalisation step
    (:mod:`mappings.rdsr.quirks`), never by the readers.
    """

    value_type: str
    relationship: str
    concept: Code | None
    text: str | None = None
    code: Code | None = None
    number_text: str | None = None
    unit: Code | None = None
    has_measured_value: bool = False
    children: tuple[ContentItem, ...] = ()
    numbers: tuple[float, ...] = ()
    number_error: str | None = None

    def is_(self, key: tuple[str, str]) -> bool:
        """True when the concept name is ``key`` = (code value, scheme)."""
        return self.concept is not None and self.concept.key == key

    def find(self, key: tuple[str, str]) -> ContentItem | None:
        """The first direct child whose concept name is ``key``."""
        for child in self.children:
            if child.concept is not None and child.concept.key == key:
                return child
        return None

    def find_all(self, key: tuple[str, str]) -> list[ContentItem]:
        """All direct children whose concept name is ``key``."""
        return [c for c in self.children if c.concept is not None and c.concept.key == key]


def iter_tree(items: Iterable[ContentItem]) -> Iterator[ContentItem]:
    """Depth-first walk over ``items`` and all their descendants."""
    for item in items:
        yield item
        if item.children:
            yield from iter_tree(item.children)


# --- reading from pydicom Datasets ----------------------------------------------------------------
# Elements are taken with ``Dataset.elements()``, which yields them still encoded when pydicom has not
# converted them yet; decoding the few SR attributes here is much cheaper than pydicom's generic
# conversion, and a nested sequence that is still encoded goes to the byte reader below.

def _elem_text(elem: object, encodings: list[str], delimiters: set[int]) -> str:
    value = elem.value  # type: ignore[attr-defined]
    if value is None:
        return ""
    if isinstance(value, bytes):
        if value.isascii():
            return _clean(value.decode("ascii"))
        return _clean(decode_bytes(value, encodings, delimiters))
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(_num_str(v) for v in value)
    return _clean(_num_str(value))


def _sequence_items(elem: object, encodings: list[str]) -> list[Dataset] | list[ContentItem] | None:
    """Items of a sequence element: Datasets when pydicom decoded it, None when it is still encoded."""
    value = elem.value  # type: ignore[attr-defined]
    if isinstance(value, bytes):
        return None
    return list(value or ())


def _raw_reader_for(elem: object, encodings: list[str]) -> _RawReader:
    return _RawReader(elem.value, elem.is_implicit_VR, elem.is_little_endian, encodings)  # type: ignore[attr-defined]


def _first_code_elem(elem: object, encodings: list[str]) -> Code | None:
    items = _sequence_items(elem, encodings)
    if items is None:
        reader = _raw_reader_for(elem, encodings)
        spans = reader.sequence(0, len(reader.buf))[0]
        return reader.code(*spans[0]) if spans else None
    if not items:
        return None
    fields = ["", "", ""]
    for sub in items[0].elements():  # type: ignore[union-attr]
        slot = _CODE_TAGS.get(sub.tag)
        if slot is not None:
            fields[slot] = _elem_text(sub, encodings, _TEXT_DELIMS)
    return Code(*fields)


def _measured_value(elem: object, encodings: list[str]) -> tuple[bool, str | None, Code | None]:
    items = _sequence_items(elem, encodings)
    if items is None:
        reader = _raw_reader_for(elem, encodings)
        spans = reader.sequence(0, len(reader.buf))[0]
        if not spans:
            return False, None, None
        number_text, unit = reader.measured_value(*spans[0])
        return True, number_text, unit
    if not items:
        return False, None, None
    number_text = None
    unit = None
    for sub in items[0].elements():  # type: ignore[union-attr]
        if sub.tag == 0x0040A30A:
            number_text = _elem_text(sub, encodings, _TEXT_DELIMS)
        elif sub.tag == 0x004008EA:
            unit = _first_code_elem(sub, encodings)
    return True, number_text, unit


def _item_from_dataset(item: Dataset, encodings: list[str]) -> ContentItem:
    value_type = relationship = ""
    concept = code = unit = None
    text = number_text = None
    has_mv = False
    children: tuple[ContentItem, ...] = ()
    for elem in item.elements():
        tag = elem.tag
        if tag == 0x0040A040:
            value_type = _elem_text(elem, encodings, _TEXT_DELIMS)
        elif tag == 0x0040A010:
            relationship = _elem_text(elem, encodings, _TEXT_DELIMS)
        elif tag == 0x0040A043:
            concept = _first_code_elem(elem, encodings)
        elif tag == 0x0040A168:
            code = _first_code_elem(elem, encodings)
        elif tag in _TEXT_TAGS:
            text = _elem_text(elem, encodings, _PN_DELIMS if tag == 0x0040A123 else _TEXT_DELIMS)
        elif tag == 0x0040A300:
            has_mv, number_text, unit = _measured_value(elem, encodings)
        elif tag == 0x0040A730:
            children = _children(elem, encodings)
    return ContentItem(value_type, relationship, concept, text, code, number_text, unit, has_mv, children)


def _children(elem: object, encodings: list[str]) -> tuple[ContentItem, ...]:
    items = _sequence_items(elem, encodings)
    if items is None:
        reader = _raw_reader_for(elem, encodings)
        return tuple(reader.item(s, e) for s, e in reader.sequence(0, len(reader.buf))[0])
    return tuple(_item_from_dataset(i, encodings) for i in items)  # type: ignore[arg-type]


def _num_str(value: object) -> str:
    original = getattr(value, "original_string", None)
    return str(original) if original is not None else str(value)


def _clean(text: str) -> str:
    return text.strip(" \x00\t\r\n")


# --- reading the encoded ContentSequence directly -------------------------------------------------

_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"})
_CODE_TAGS = {0x00080100: 0, 0x00080119: 0, 0x00080120: 0, 0x00080102: 1, 0x00080104: 2}
_TEXT_TAGS = frozenset({0x0040A160, 0x0040A124, 0x0040A120, 0x0040A123, 0x0040A121, 0x0040A122})
_PN_DELIMS = {0x5E, 0x3D}
_TEXT_DELIMS = {0x0D, 0x0A, 0x09, 0x0C}


_U16_LE = struct.Struct("<H").unpack_from
_CODE_CACHE: dict[tuple[bytes, bool, bool, tuple[str, ...]], Code] = {}


class _RawReader:
    """Parses SR items out of the bytes of an encoded ContentSequence (any of the three uncompressed
    transfer syntaxes: implicit VR little endian, explicit VR little/big endian)."""

    __slots__ = ("buf", "encodings", "hh", "implicit", "u16", "u32")

    def __init__(self, buf: bytes, implicit: bool, little: bool, encodings: list[str]):
        self.buf = buf
        self.implicit = implicit
        prefix = "<" if little else ">"
        self.u16 = _U16_LE if little else struct.Struct(">H").unpack_from
        self.u32 = struct.Struct(prefix + "I").unpack_from
        self.hh = struct.Struct(prefix + "HH").unpack_from
        self.encodings = encodings

    def header(self, pos: int) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None when implicit, value length, position of the value)."""
        buf = self.buf
        group, element = self.hh(buf, pos)
        tag = (group << 16) | element
        if self.implicit or group == 0xFFFE:
            return tag, None, self.u32(buf, pos + 4)[0], pos + 8
        vr = buf[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            return tag, vr, self.u32(buf, pos + 8)[0], pos + 12
        return tag, vr, self.u16(buf, pos + 6)[0], pos + 8

    def sequence(self, pos: int, end: int) -> tuple[list[tuple[int, int]], int]:
        """Item spans [(start, end)] of a sequence value starting at ``pos``; ``end`` may be undefined."""
        items: list[tuple[int, int]] = []
        buf_len = len(self.buf)
        while pos + 8 <= min(end, buf_len):
            tag, _vr, length, vpos = self.header(pos)
            if tag == _SEQ_END:
                return items, vpos
            if tag != _ITEM:
                raise MalformedReportError(f"expected a sequence item at byte {pos}, found tag {tag:08X}")
            if length == _UNDEFINED:
                item_end = self.skip_dataset(vpos, _UNDEFINED)
                items.append((vpos, item_end - 8))
                pos = item_end
            else:
                items.append((vpos, vpos + length))
                pos = vpos + length
        return items, pos

    def skip_dataset(self, pos: int, end: int) -> int:
        """Position just after an undefined-length item's delimiter."""
        while pos + 8 <= len(self.buf):
            tag, vr, length, vpos = self.header(pos)
            if tag == _ITEM_END:
                return vpos
            pos = self.skip_value(tag, vr, length, vpos)
        raise MalformedReportError("unterminated sequence item in ContentSequence")

    def skip_value(self, tag: int, vr: bytes | None, length: int, vpos: int) -> int:
        if length != _UNDEFINED:
            return vpos + length
        # undefined length: a sequence (or encapsulated data) ending with a sequence delimiter
        _items, after = self.sequence(vpos, _UNDEFINED)
        return after

    def elements(self, start: int, end: int) -> Iterator[tuple[int, bytes | None, int, int]]:
        pos = start
        while pos + 8 <= end:
            tag, vr, length, vpos = self.header(pos)
            if tag == _ITEM_END:
                return
            yield tag, vr, length, vpos
            pos = self.skip_value(tag, vr, length, vpos)

    def seq_items(self, length: int, vpos: int) -> list[tuple[int, int]]:
        end = vpos + length if length != _UNDEFINED else _UNDEFINED
        return self.sequence(vpos, end)[0]

    def string(self, vpos: int, length: int, delimiters: set[int]) -> str:
        raw = self.buf[vpos : vpos + length]
        if raw.isascii():
            return _clean(raw.decode("ascii"))
        return _clean(decode_bytes(raw, self.encodings, delimiters))

    def code(self, start: int, end: int) -> Code:
        # The same few dozen code items recur in every report: decode each distinct encoding once.
        key = (self.buf[start:end], self.implicit, self.u16 is _U16_LE, tuple(self.encodings))
        found = _CODE_CACHE.get(key)
        if found is None:
            found = self._decode_code(start, end)
            if len(_CODE_CACHE) > 8192:
                _CODE_CACHE.clear()
            _CODE_CACHE[key] = found
        return found

    def _decode_code(self, start: int, end: int) -> Code:
        fields = ["", "", ""]
        for tag, _vr, length, vpos in self.elements(start, end):
            slot = _CODE_TAGS.get(tag)
            if slot is not None and length:
                fields[slot] = self.string(vpos, length, _TEXT_DELIMS)
        return Code(*fields)

    def first_code(self, length: int, vpos: int) -> Code | None:
        items = self.seq_items(length, vpos)
        return self.code(*items[0]) if items else None

    def item(self, start: int, end: int) -> ContentItem:
        value_type = relationship = ""
        concept = code = unit = None
        text = number_text = None
        has_mv = False
        children: tuple[ContentItem, ...] = ()
        for tag, _vr, length, vpos in self.elements(start, end):
            if tag == 0x0040A040:
                value_type = _clean(self.buf[vpos : vpos + length].decode("ascii", "replace"))
            elif tag == 0x0040A010:
                relationship = _clean(self.buf[vpos : vpos + length].decode("ascii", "replace"))
            elif tag == 0x0040A043:
                concept = self.first_code(length, vpos)
            elif tag == 0x0040A168:
                code = self.first_code(length, vpos)
            elif tag in _TEXT_TAGS:
                delimiters = _PN_DELIMS if tag == 0x0040A123 else _TEXT_DELIMS
                text = self.string(vpos, length, delimiters) if length else ""
            elif tag == 0x0040A300:
                mv_items = self.seq_items(length, vpos)
                if mv_items:
                    has_mv = True
                    number_text, unit = self.measured_value(*mv_items[0])
            elif tag == 0x0040A730:
                children = tuple(self.item(s, e) for s, e in self.seq_items(length, vpos))
        return ContentItem(value_type, relationship, concept, text, code, number_text, unit, has_mv, children)

    def measured_value(self, start: int, end: int) -> tuple[str | None, Code | None]:
        number_text = None
        unit = None
        for tag, _vr, length, vpos in self.elements(start, end):
            if tag == 0x0040A30A:
                number_text = _clean(self.buf[vpos : vpos + length].decode("latin-1"))
            elif tag == 0x004008EA:
                unit = self.first_code(length, vpos)
        return number_text, unit


def read_content_tree(ds: Dataset) -> tuple[ContentItem, ...]:
    """The document's top-level content items (children of the root CONTAINER).

    Raises :class:`MalformedReportError` when the encoded sequence cannot be parsed.
    """
    if 0x0040A730 not in ds:
        return ()
    elem = ds.get_item(0x0040A730)
    if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes) and elem.value is not None:
        encodings = _encodings(ds)
        reader = _RawReader(elem.value, elem.is_implicit_VR, elem.is_little_endian, encodings)
        try:
            spans = reader.sequence(0, len(elem.value))[0]
            return tuple(reader.item(s, e) for s, e in spans)
        except (struct.error, IndexError, UnicodeDecodeError, LookupError) as exc:
            raise MalformedReportError(f"ContentSequence cannot be parsed: {exc}") from exc
    try:
        return _children(elem, _encodings(ds))
    except (AttributeError, TypeError, ValueError, KeyError, struct.error, IndexError, LookupError) as exc:
        raise MalformedReportError(f"ContentSequence cannot be read: {exc}") from exc


def _encodings(ds: Dataset) -> list[str]:
    from pydicom.charset import convert_encodings

    raw = ds.get("SpecificCharacterSet")
    if not raw:
        names = ["ISO_IR 6"]
    elif isinstance(raw, str):
        names = [raw]
    else:
        names = [str(v) for v in raw]
    return convert_encodings(names)


__all__ = ["Code", "ContentItem", "iter_tree", "read_content_tree"]
