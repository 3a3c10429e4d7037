"""HL7 v2 ER7 ("pipe and hat") reading: bytes → text → segments → fields, with escapes decoded.

Why not hl7apy: its full parse costs 20–50 ms per message (``docs/reference/hl7-dicom-integration.md``
§1.4), drops Z-segments with ``find_groups=True``, returns only MSH for LF/CRLF input, has no batch
support, and leaves escape sequences undecoded. DACS needs a handful of fields from a handful of
segments at ≥ 500 messages/s, so this module splits segments on demand and decodes escapes itself.

Rules implemented (HL7 v2.5.1 chapter 2, sections 2.5–2.7, unchanged in substance to 2.8):

* Delimiters come from MSH-1 (field separator) and MSH-2 (component, repetition, escape, subcomponent
  and, from v2.7, truncation characters); nothing is assumed.
* Segment separators CR, LF and CRLF are all accepted (senders and files differ); blank lines are skipped.
* Escapes ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\P\\`` give back the delimiter, ``\\Xhh..\\`` the bytes
  decoded in the message charset, ``\\.br\\``/``\\.sp\\`` a line break; highlighting (``\\H\\ \\N\\``)
  and other formatting commands are dropped; an unknown or unterminated sequence is kept literally.
* A field holding exactly ``""`` is the HL7 null ("delete this value"); accessors keep it so the mapping
  can tell "clear" from "not sent" (empty).
* Bytes are decoded with the charset in MSH-18 (table 0211). A single-byte charset declaration over bytes
  that are valid multi-byte UTF-8 is taken as UTF-8 (real RIS messages claim ``8859/1`` and carry UTF-8,
  sample 03); bytes invalid in the declared charset fall back to ISO-8859-1, which cannot fail. Every such
  decision is a warning on the message, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from mappings.hl7v2.errors import Hl7ParseError

HL7_NULL = '""'
"""The HL7 v2 null value: the field is to be cleared at the receiver."""

HEADER_SEGMENTS = frozenset({"MSH", "BHS", "FHS"})
"""Segments whose field 1 is the field separator and field 2 the encoding characters."""

# HL7 table 0211 (alternate character sets) → Python codec. Keys are normalised with _charset_key.
_CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISOIR6": "ascii",
    "88591": "iso8859-1",
    "88592": "iso8859-2",
    "88593": "iso8859-3",
    "88594": "iso8859-4",
    "88595": "iso8859-5",
    "88596": "iso8859-6",
    "88597": "iso8859-7",
    "88598": "iso8859-8",
    "88599": "iso8859-9",
    "885915": "iso8859-15",
    "ISOIR100": "iso8859-1",  # DICOM spelling some RIS copy into MSH-18
    "ISOIR14": "shift_jis",  # JIS X 0201 romaji + half-width katakana, a subset of Shift JIS
    "ISOIR87": "iso2022_jp",
    "ISOIR159": "iso2022_jp_2",
    "GB180302000": "gb18030",
    "KSX1001": "euc_kr",
    "BIG5": "big5",
    "UNICODE": "utf-8",
    "UNICODEUTF8": "utf-8",
    "UTF8": "utf-8",
    "UNICODEUTF16": "utf-16",
    "UNICODEUTF32": "utf-32",
    "WINDOWS1252": "cp1252",
    "CP1252": "cp1252",
}
_SINGLE_BYTE = frozenset(
    {"ascii", "cp1252"} | {f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)}
)
_FALLBACK_CODEC = "iso8859-1"


def _charset_key(name: str) -> str:
    return re.sub(r"[\s/_\-.]", "", name).upper()


def codec_for_charset(name: str) -> str | None:
    """The Python codec for an HL7 table 0211 charset name (MSH-18), or None if unknown."""
    return _CHARSETS.get(_charset_key(name)) if name else None


@dataclass(frozen=True, slots=True)
class Encoding:
    """The delimiters declared by MSH-1 and MSH-2 (an empty string means "not used")."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @classmethod
    def from_header(cls, segment: str) -> Encoding:
        """Read the delimiters from the start of an MSH, BHS or FHS segment.

        Raises
        ------
        Hl7ParseError
            When the separators are missing, repeated or alphanumeric, i.e. the message cannot be split.
        """
        if len(segment) < 4 or segment[:3] not in HEADER_SEGMENTS:
            raise Hl7ParseError("no MSH segment with a field separator")
        fs = segment[3]
        end = segment.find(fs, 4)
        chars = segment[4:] if end < 0 else segment[4:end]
        if not chars:
            raise Hl7ParseError(f"{segment[:3]}-2 (encoding characters) is empty")
        if len(chars) > 5:
            raise Hl7ParseError(f"{segment[:3]}-2 has {len(chars)} encoding characters (at most 5)")
        delimiters = fs + chars
        if len(set(delimiters)) != len(delimiters) or any(
            c.isalnum() or c.isspace() for c in delimiters
        ):
            raise Hl7ParseError(f"unusable delimiters {delimiters!r} in {segment[:3]}-1/-2")
        padded = chars.ljust(5, "\0")
        return cls(
            field=fs,
            component=chars[0],
            repetition=padded[1].strip("\0"),
            escape=padded[2].strip("\0"),
            subcomponent=padded[3].strip("\0"),
            truncation=padded[4].strip("\0"),
        )

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as it was declared."""
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    def unescape(self, value: str, charset: str = _FALLBACK_CODEC) -> str:
        """Decode HL7 escape sequences in one leaf value (see the module docstring for the rules)."""
        esc = self.escape
        if not esc or esc not in value:
            return value
        out: list[str] = []
        i = 0
        while True:
            j = value.find(esc, i)
            if j < 0:
                out.append(value[i:])
                break
            k = value.find(esc, j + 1)
            if k < 0:  # unterminated: keep literally
                out.append(value[i:])
                break
            out.append(value[i:j])
            replacement = self._sequence(value[j + 1 : k], charset)
            out.append(value[j : k + 1] if replacement is None else replacement)
            i = k + 1
        return "".join(out)

    def _sequence(self, seq: str, charset: str) -> str | None:
        if len(seq) == 1:
            return {
                "F": self.field,
                "S": self.component,
                "T": self.subcomponent,
                "R": self.repetition,
                "E": self.escape,
                "P": self.truncation,
                "H": "",
                "N": "",
            }.get(seq)
        if not seq:
            return None
        head = seq[0]
        if head == "X":
            hexdigits = seq[1:]
            if len(hexdigits) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", hexdigits):
                return None
            return bytes.fromhex(hexdigits).decode(charset, errors="replace")
        if head == ".":
            return _formatting(seq[1:])
        if head in "CM" and re.fullmatch(r"[0-9A-Fa-f]{4,6}", seq[1:]):
            return ""  # ISO 2022 charset switch: the decoder has already produced text
        return None

    def escape_text(self, value: str) -> str:
        """Escape delimiters in free text written into an ER7 field (used for ACK text)."""
        esc = self.escape or "\\"
        value = value.replace(esc, f"{esc}E{esc}")
        for char, code in (
            (self.field, "F"),
            (self.component, "S"),
            (self.subcomponent, "T"),
            (self.repetition, "R"),
            (self.truncation, "P"),
        ):
            if char:
                value = value.replace(char, f"{esc}{code}{esc}")
        return value.replace("\r", " ").replace("\n", " ")


def _formatting(command: str) -> str | None:
    """Formatted-text commands (FT data type): keep line breaks, drop layout."""
    name, arg = command[:2], command[2:]
    if name == "br" and not arg:
        return "\n"
    if name == "sp":
        count = int(arg) if arg.isdigit() else 1
        return "\n" * max(count, 1)
    if name in {"fi", "nf", "ce"} and not arg:
        return ""
    if name in {"in", "ti", "sk"} and re.fullmatch(r"[+-]?\d*", arg):
        return ""
    return None


class Repetition:
    """One repetition of a field: components and subcomponents on demand, leaves unescaped."""

    __slots__ = ("_components", "charset", "encoding", "raw")

    def __init__(self, raw: str, encoding: Encoding, charset: str) -> None:
        self.raw = raw
        self.encoding = encoding
        self.charset = charset
        self._components: list[str] | None = None

    @property
    def is_null(self) -> bool:
        """True for the HL7 null ``""``."""
        return self.raw == HL7_NULL

    def _split(self) -> list[str]:
        if self._components is None:
            self._components = self.raw.split(self.encoding.component)
        return self._components

    def raw_component(self, component: int) -> str:
        """Component ``component`` (1-based) with subcomponent separators and escapes left as sent."""
        comps = self._split()
        return comps[component - 1] if 0 < component <= len(comps) else ""

    def get(self, component: int = 1, subcomponent: int = 1) -> str:
        """One decoded leaf value ('' if absent). ``""`` (HL7 null) is returned as is."""
        comp = self.raw_component(component)
        sub = self.encoding.subcomponent
        if sub and sub in comp:
            parts = comp.split(sub)
            comp = parts[subcomponent - 1] if subcomponent <= len(parts) else ""
        elif subcomponent != 1:
            return ""
        return self.encoding.unescape(comp, self.charset)

    def text(self, component: int = 1) -> str:
        """A whole component decoded, subcomponent separators kept (for free text with stray ``&``)."""
        return self.encoding.unescape(self.raw_component(component), self.charset)

    def __repr__(self) -> str:
        return f"Repetition({self.raw!r})"


class Segment:
    """One segment; ``fields[n]`` is field n as sent (for MSH, ``fields[1]`` is the field separator)."""

    __slots__ = ("charset", "encoding", "fields", "name")

    def __init__(self, name: str, fields: list[str], encoding: Encoding, charset: str) -> None:
        self.name = name
        self.fields = fields
        self.encoding = encoding
        self.charset = charset

    def raw(self, n: int) -> str:
        """Field ``n`` exactly as sent ('' if absent)."""
        return self.fields[n] if 0 < n < len(self.fields) else ""

    def is_null(self, n: int) -> bool:
        """True when field ``n`` is the HL7 null ``""`` (clear the value)."""
        return self.raw(n) == HL7_NULL

    def repetitions(self, n: int) -> list[Repetition]:
        """The non-empty repetitions of field ``n``."""
        raw = self.raw(n)
        if not raw:
            return []
        rep = self.encoding.repetition
        split = rep and rep in raw and not (n <= 2 and self.name in HEADER_SEGMENTS)
        parts = raw.split(rep) if split else [raw]
        return [Repetition(p, self.encoding, self.charset) for p in parts if p]

    def first(self, n: int) -> Repetition:
        """The first non-empty repetition of field ``n`` (empty when the field is empty)."""
        raw = self.fields[n] if 0 < n < len(self.fields) else ""
        rep = self.encoding.repetition
        if rep and rep in raw and not (n <= 2 and self.name in HEADER_SEGMENTS):
            raw = next((part for part in raw.split(rep) if part), "")
        return Repetition(raw, self.encoding, self.charset)

    def get(self, n: int, component: int = 1, subcomponent: int = 1) -> str:
        """Decoded leaf of the first repetition of field ``n``; MSH-1 and MSH-2 are returned raw."""
        if self.name in HEADER_SEGMENTS and n <= 2:
            return self.raw(n)
        return self.first(n).get(component, subcomponent)

    def __repr__(self) -> str:
        return f"Segment({self.name}, {len(self.fields) - 1} fields)"


@dataclass(frozen=True)
class MessageHeader:
    """What MSH says about a message: routing, type, control id, version, ACK modes, charset.

    ``*_application``/``*_facility`` and ``control_id_raw`` keep the ER7 text as sent, so an ACK can echo
    them byte for byte; the other values are decoded.
    """

    encoding: Encoding
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    timestamp: str
    message_code: str
    trigger_event: str
    structure: str
    control_id: str
    control_id_raw: str
    processing_id: str
    version: str
    accept_ack_type: str
    application_ack_type: str
    charset: str

    @classmethod
    def from_segment(cls, msh: Segment) -> MessageHeader:
        """Read the header fields from a parsed MSH segment."""
        return cls(
            encoding=msh.encoding,
            sending_application=msh.raw(3),
            sending_facility=msh.raw(4),
            receiving_application=msh.raw(5),
            receiving_facility=msh.raw(6),
            timestamp=msh.get(7),
            message_code=msh.get(9, 1).strip().upper(),
            trigger_event=msh.get(9, 2).strip().upper(),
            structure=msh.get(9, 3).strip().upper(),
            control_id=msh.get(10).strip(),
            control_id_raw=msh.raw(10),
            processing_id=msh.get(11).strip().upper(),
            version=msh.get(12).strip(),
            accept_ack_type=msh.get(15).strip().upper(),
            application_ack_type=msh.get(16).strip().upper(),
            charset=msh.get(18).strip(),
        )

    @property
    def message_type(self) -> str:
        """``CODE^EVENT`` as used in logs and results (e.g. ``ORM^O01``)."""
        return f"{self.message_code}^{self.trigger_event}" if self.trigger_event else self.message_code

    @property
    def enhanced_mode(self) -> bool:
        """Enhanced acknowledgement mode is in force when MSH-15 or MSH-16 is valued (HL7 v2.5 §2.9.3)."""
        return bool(self.accept_ack_type or self.application_ack_type)


@dataclass(frozen=True)
class Message:
    """A parsed HL7 v2 message: segments in order plus how its bytes were decoded."""

    segments: tuple[Segment, ...]
    encoding: Encoding
    charset: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    @cached_property
    def header(self) -> MessageHeader:
        return MessageHeader.from_segment(self.segments[0])

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``, or None."""
        for seg in self.segments:
            if seg.name == name:
                return seg
        return None

    def all(self, name: str) -> list[Segment]:
        """Every segment called ``name``, in order."""
        return [seg for seg in self.segments if seg.name == name]


def read_declared_charset(data: bytes) -> str:
    """MSH-18 (first repetition) read from raw bytes, '' if absent; MSH is ASCII in every charset."""
    start = data.find(b"MSH")
    if start < 0:
        return ""
    end = len(data)
    for stop in (b"\r", b"\n"):
        pos = data.find(stop, start)
        if 0 <= pos < end:
            end = pos
    line = data[start:end].decode("latin-1")
    if len(line) < 8:
        return ""
    fields = line.split(line[3])
    if len(fields) < 18:
        return ""
    value = fields[17]
    enc_chars = fields[1]
    if len(enc_chars) >= 2 and enc_chars[1] in value:
        value = value.split(enc_chars[1])[0]
    if enc_chars and enc_chars[0] in value:
        value = value.split(enc_chars[0])[0]
    return value.strip()


def decode_message(data: bytes) -> tuple[str, str, tuple[str, ...]]:
    """Decode one message's bytes using MSH-18 with safe fallbacks.

    Returns
    -------
    (text, codec, warnings)
        ``codec`` is the Python codec actually used (needed again for ``\\Xhh\\`` escapes).
    """
    declared = read_declared_charset(data)
    codec = codec_for_charset(declared)
    warnings: list[str] = []
    if declared and codec is None:
        warnings.append(f"MSH-18 charset {declared!r} is not in HL7 table 0211; guessing")
    if data.isascii() and (codec is None or codec in _SINGLE_BYTE or codec == "utf-8"):
        return data.decode("ascii"), codec or "utf-8", tuple(warnings)
    candidates: list[str]
    if codec is None:
        candidates = ["utf-8"]
    elif codec in _SINGLE_BYTE:
        # A valid multi-byte UTF-8 sequence is vanishingly rare in real single-byte text, while RIS
        # that declare 8859/1 and send UTF-8 are common (sample 03): prefer UTF-8 when it decodes.
        candidates = ["utf-8", codec]
    else:
        candidates = [codec, "utf-8"]
    for candidate in candidates:
        try:
            text = data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
        if codec is not None and candidate != codec:
            warnings.append(f"MSH-18 declares {declared!r} but the bytes are {candidate}; decoded as such")
        elif codec is None and not declared:
            warnings.append(f"no MSH-18 and non-ASCII bytes; decoded as {candidate}")
        return text, candidate, tuple(warnings)
    warnings.append(
        f"bytes are not valid {declared or 'UTF-8'}; decoded as ISO-8859-1 (some characters may be wrong)"
    )
    return data.decode(_FALLBACK_CODEC), _FALLBACK_CODEC, tuple(warnings)


def normalise_segments(text: str) -> list[str]:
    """Split text into segments on CR, LF or CRLF, dropping blank lines and a leading BOM."""
    text = text.lstrip("\ufeff\x0b \t\r\n")
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    return [s for s in text.split("\r") if s.strip()]


def parse_message(data: bytes | str, charset: str | None = None) -> Message:
    """Parse one HL7 v2 message (bytes straight from the wire, or already decoded text).

    Parameters
    ----------
    data
        One message, MLLP framing removed. Bytes are decoded with :func:`decode_message`.
    charset
        Codec of ``data`` when it is text (used for ``\\Xhh\\`` escapes); ignored for bytes.

    Raises
    ------
    Hl7ParseError
        When there is no MSH at the start, its delimiters are unusable, or a second MSH follows
        (a batch: use :func:`split_messages` first).
    """
    warnings: tuple[str, ...] = ()
    if isinstance(data, bytes):
        text, codec, warnings = decode_message(data)
    else:
        text, codec = data, charset or "utf-8"
    lines = normalise_segments(text)
    if not lines or not lines[0].startswith("MSH"):
        raise Hl7ParseError("message does not start with an MSH segment")
    encoding = Encoding.from_header(lines[0])
    fs = encoding.field
    parts = lines[0].split(fs)
    segments = [Segment("MSH", ["MSH", fs, *parts[1:]], encoding, codec)]
    extra: list[str] = []
    for line in lines[1:]:
        name = line[:3]
        if name == "MSH":
            raise Hl7ParseError("more than one MSH segment: a batch, split it with split_messages")
        if len(name) != 3 or not name.isalnum() or (len(line) > 3 and line[3] != fs):
            extra.append(f"skipped a line that is not a segment: {line[:20]!r}")
            continue
        segments.append(Segment(name, line.split(fs), encoding, codec))
    return Message(tuple(segments), encoding, codec, warnings + tuple(extra))


@dataclass(frozen=True)
class Batch:
    """Messages found in a file or an MLLP block, with the batch envelope's own checks.

    ``messages`` are raw bytes, one per MSH, each still to be decoded with its own MSH-18.
    """

    messages: tuple[bytes, ...]
    batch_header: bytes | None = None
    file_header: bytes | None = None
    warnings: tuple[str, ...] = ()

    @property
    def is_batch(self) -> bool:
        """True when the input had an FHS or BHS envelope."""
        return self.batch_header is not None or self.file_header is not None


_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


def split_messages(data: bytes) -> Batch:
    """Split a file, an MLLP block or an FHS/BHS batch into single messages (bytes, per MSH).

    Line endings are normalised, MLLP start/end bytes are treated as separators (so captured MLLP streams
    import too), and BTS-1/FTS-1 counts are checked against what was found (a mismatch is a warning).
    """
    data = data.replace(b"\x0b", b"\r").replace(b"\x1c", b"\r")
    if b"\n" in data:
        data = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    messages: list[list[bytes]] = []
    warnings: list[str] = []
    batch_header: bytes | None = None
    file_header: bytes | None = None
    batch_counts: list[tuple[bytes, int]] = []
    stray = 0
    for line in data.split(b"\r"):
        if not line.strip():
            continue
        line = line.lstrip(b"\xef\xbb\xbf \t")
        name = line[:3]
        if name == b"MSH":
            messages.append([line])
        elif name in _ENVELOPE:
            if name == b"BHS":
                batch_header = batch_header or line
            elif name == b"FHS":
                file_header = file_header or line
            elif name == b"BTS":
                batch_counts.append((line, len(messages)))
        elif messages:
            messages[-1].append(line)
        else:
            stray += 1
    if stray:
        warnings.append(f"{stray} segment(s) before the first MSH were ignored")
    previous = 0
    for line, upto in batch_counts:
        fs = line[3:4] or b"|"
        fields = line.split(fs)
        declared = fields[1].strip() if len(fields) > 1 else b""
        found = upto - previous
        previous = upto
        if declared.isdigit() and int(declared) != found:
            warnings.append(f"BTS-1 says {int(declared)} messages, the batch holds {found}")
    return Batch(
        messages=tuple(b"\r".join(segs) + b"\r" for segs in messages),
        batch_header=batch_header,
        file_header=file_header,
        warnings=tuple(warnings),
    )


def parse_header(data: bytes) -> MessageHeader | None:
    """Best-effort MSH of raw bytes (for answering a message that cannot be processed), or None.

    Looks for ``MSH`` at the start of the data or of any line, so it also works on a badly framed
    block; only the MSH line is decoded.
    """
    start = 0 if data.startswith(b"MSH") else -1
    if start < 0:
        for sep in (b"\rMSH", b"\nMSH", b"\x0bMSH"):
            pos = data.find(sep)
            if pos >= 0 and (start < 0 or pos + 1 < start):
                start = pos + 1
    if start < 0:
        return None
    end = len(data)
    for stop in (b"\r", b"\n", b"\x1c"):
        pos = data.find(stop, start)
        if 0 <= pos < end:
            end = pos
    line = data[start:end]
    try:
        message = parse_message(line)
    except Hl7ParseError:
        return None
    return message.header
