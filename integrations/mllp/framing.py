"""MLLP framing (HL7 v2 Transport Specification, MLLP release 1): ``<SB> message <EB><CR>``.

SB = 0x0B, EB = 0x1C, CR = 0x0D. :class:`MllpDecoder` is a byte-stream state machine with no I/O, so
the same code handles several messages in one read, a message split over many reads (byte by byte),
and every malformed case, and can be tested without sockets. It never holds more than
``max_message_bytes`` of one message: a longer one is discarded up to its end block and reported.

Malformed input is reported as :class:`FramingError` events, each with the bytes that could help
identify the message (so the server can answer an AR when an MSH is in them):

* bytes before a start block that are not blank lines ("data outside MLLP framing");
* an end block with no start block; an end block followed by something other than CR;
* a start block inside a message (the sender gave up on the previous one);
* a message larger than the limit; data cut off by the end of the connection or a timeout.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SB = 0x0B
EB = 0x1C
CR = 0x0D
START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
_BLANK = frozenset(b" \t\r\n\x00")
HEAD_BYTES = 8192
"""How much of an oversize or broken message is kept to find its MSH (the MSH line is far shorter)."""


def frame(payload: bytes) -> bytes:
    """Wrap one message (or ACK) in MLLP start and end blocks."""
    return START_BLOCK + payload + END_BLOCK


@dataclass(frozen=True)
class Frame:
    """One complete, well-framed message (framing bytes removed)."""

    payload: bytes


@dataclass(frozen=True)
class FramingError:
    """Input that is not a well-framed message.

    Attributes
    ----------
    data
        The bytes involved (at most :data:`HEAD_BYTES` for oversize or unframed data).
    reason
        Human-readable cause, used in the log line and in the AR text.
    fatal
        True when the stream cannot be resynchronised (the connection should be closed even if an
        AR could be sent).
    """

    data: bytes
    reason: str
    fatal: bool = False


class _State(enum.Enum):
    IDLE = 0
    FRAME = 1
    JUNK = 2
    OVERSIZE = 3


class MllpDecoder:
    """Incremental MLLP decoder: :meth:`feed` bytes, get :class:`Frame` and :class:`FramingError` events."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray()
        self._state = _State.IDLE
        self._scan = 0
        self._head = b""

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a message."""
        return len(self._buf)

    @property
    def in_message(self) -> bool:
        """True when part of a message (or unframed data) has been received and not yet reported."""
        return self._state is not _State.IDLE or bool(self._buf)

    def feed(self, data: bytes) -> list[Frame | FramingError]:
        """Add received bytes; return the events they complete, in stream order."""
        self._buf += data
        events: list[Frame | FramingError] = []
        while self._step(events):
            pass
        return events

    def finish(self, reason: str) -> list[FramingError]:
        """The stream ended (closed or timed out): report what was left unfinished."""
        events: list[FramingError] = []
        if self._state is _State.FRAME:
            events.append(FramingError(bytes(self._buf[1 : 1 + HEAD_BYTES]), f"{reason} inside a message"))
        elif self._state is _State.JUNK and self._buf:
            events.append(FramingError(bytes(self._buf[:HEAD_BYTES]), f"unframed data, then {reason}"))
        elif self._state is _State.OVERSIZE:
            events.append(FramingError(self._head, f"message over {self.max_message_bytes} bytes, then "
                                       f"{reason}"))
        self._buf.clear()
        self._state = _State.IDLE
        self._scan = 0
        return events

    def _step(self, events: list[Frame | FramingError]) -> bool:
        if self._state is _State.IDLE:
            return self._idle()
        if self._state is _State.FRAME:
            return self._frame(events)
        if self._state is _State.JUNK:
            return self._junk(events)
        return self._oversize(events)

    def _idle(self) -> bool:
        buf = self._buf
        i = 0
        while i < len(buf) and buf[i] in _BLANK:
            i += 1
        if i:
            del buf[:i]
        if not buf:
            return False
        self._state = _State.FRAME if buf[0] == SB else _State.JUNK
        self._scan = 1 if buf[0] == SB else 0
        return True

    def _frame(self, events: list[Frame | FramingError]) -> bool:
        buf = self._buf
        eb = buf.find(EB, self._scan)
        limit = eb if eb >= 0 else len(buf)
        restart = buf.find(SB, max(self._scan, 1), limit)
        if restart >= 0:
            events.append(FramingError(bytes(buf[1:restart]), "start block inside a message "
                                       "(the previous message was not finished)"))
            del buf[:restart]
            self._scan = 1
            return True
        if eb < 0:
            if len(buf) - 1 > self.max_message_bytes:
                self._head = bytes(buf[1 : 1 + HEAD_BYTES])
                buf.clear()
                self._state = _State.OVERSIZE
                return True
            self._scan = len(buf)
            return False
        if eb - 1 > self.max_message_bytes:
            self._head = bytes(buf[1 : 1 + HEAD_BYTES])
            del buf[:eb]
            self._state = _State.OVERSIZE
            return True
        if eb + 1 >= len(buf):
            self._scan = eb
            return False
        payload = bytes(buf[1:eb])
        if buf[eb + 1] == CR:
            events.append(Frame(payload))
            del buf[: eb + 2]
        else:
            events.append(FramingError(payload, "end block not followed by CR"))
            del buf[: eb + 1]
        self._state = _State.IDLE
        self._scan = 0
        return True

    def _junk(self, events: list[Frame | FramingError]) -> bool:
        buf = self._buf
        sb = buf.find(SB, self._scan)
        eb = buf.find(EB, self._scan)
        if sb >= 0 and (eb < 0 or sb < eb):
            events.append(FramingError(bytes(buf[:sb][:HEAD_BYTES]), "data outside MLLP framing "
                                       "(no start block)"))
            del buf[:sb]
            self._state = _State.IDLE
            return True
        if eb >= 0:
            if eb + 1 >= len(buf):
                self._scan = eb
                return False
            end = eb + 2 if buf[eb + 1] == CR else eb + 1
            events.append(FramingError(bytes(buf[:eb][:HEAD_BYTES]), "end block without start block"))
            del buf[:end]
            self._state = _State.IDLE
            return True
        if len(buf) > self.max_message_bytes:
            events.append(FramingError(bytes(buf[:HEAD_BYTES]), "unframed data over "
                                       f"{self.max_message_bytes} bytes", fatal=True))
            buf.clear()
            self._state = _State.IDLE
            return False
        self._scan = len(buf)
        return False

    def _oversize(self, events: list[Frame | FramingError]) -> bool:
        buf = self._buf
        eb = buf.find(EB)
        if eb < 0:
            buf.clear()
            return False
        if eb + 1 >= len(buf):
            del buf[:eb]
            return False
        end = eb + 2 if buf[eb + 1] == CR else eb + 1
        del buf[:end]
        events.append(FramingError(self._head, f"message over {self.max_message_bytes} bytes"))
        self._head = b""
        self._state = _State.IDLE
        return True
