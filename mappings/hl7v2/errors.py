"""Errors raised while reading or mapping HL7 v2, each carrying its HL7 table 0357 code.

The ACK builder turns any of these into an AE or AR with an ERR segment, so the exception type decides
what the RIS is told. Table 0357 ("Message error condition codes", HL7 v2.5 chapter 2) values used:
100 segment sequence error, 101 required field missing, 102 data type error, 103 table value not found,
200 unsupported message type, 201 unsupported event code, 202 unsupported processing id,
203 unsupported version id, 204 unknown key identifier, 205 duplicate key identifier,
207 application internal error.

AR versus AE follows HL7 v2.5 section 2.9.2: AR when the message was refused for reasons other than
its content (MSH-9, MSH-11, MSH-12 not acceptable, or the receiver could not process it now, so a
re-send may succeed); AE when the content is wrong (a re-send of the same message will fail again).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AckOutcome(enum.Enum):
    """What happened to a message; the ACK builder turns it into AA/AE/AR or CA/CE/CR."""

    ACCEPT = "accept"
    ERROR = "error"
    REJECT = "reject"


@dataclass(frozen=True)
class ErrorLocation:
    """Where an error is (HL7 ERL data type: segment id, occurrence, field, repetition, component)."""

    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None
    subcomponent: int | None = None


class Hl7Error(Exception):
    """Base of every HL7 v2 processing error.

    Attributes
    ----------
    code : int
        HL7 table 0357 error condition code.
    outcome : AckOutcome
        ERROR (AE) or REJECT (AR).
    location : ErrorLocation | None
        The segment/field at fault, when known.
    """

    code: int = 207
    code_text: str = "Application internal error"
    outcome: AckOutcome = AckOutcome.ERROR

    def __init__(self, message: str, location: ErrorLocation | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location


class Hl7ParseError(Hl7Error):
    """The bytes are not an HL7 v2 message (no MSH, no usable delimiters): refused, code 100."""

    code = 100
    code_text = "Segment sequence error"
    outcome = AckOutcome.REJECT


class SegmentSequenceError(Hl7Error):
    """A required segment is missing or out of place (for example an order without ORC/OBR)."""

    code = 100
    code_text = "Segment sequence error"


class RequiredFieldMissing(Hl7Error):
    """A field the mapping needs (patient identifier, order number) is empty."""

    code = 101
    code_text = "Required field missing"


class DataTypeError(Hl7Error):
    """A field the mapping needs does not hold a value of its data type."""

    code = 102
    code_text = "Data type error"


class TableValueNotFound(Hl7Error):
    """A coded field the mapping depends on holds a code outside its HL7 table."""

    code = 103
    code_text = "Table value not found"


class UnsupportedMessageType(Hl7Error):
    """MSH-9.1 names a message type DACS does not accept: refused (AR 200)."""

    code = 200
    code_text = "Unsupported message type"
    outcome = AckOutcome.REJECT


class UnsupportedEventCode(Hl7Error):
    """MSH-9.2 names a trigger event DACS does not accept for a known message type: AR 201."""

    code = 201
    code_text = "Unsupported event code"
    outcome = AckOutcome.REJECT


class UnsupportedProcessingId(Hl7Error):
    """MSH-11 is not P, D or T: AR 202."""

    code = 202
    code_text = "Unsupported processing id"
    outcome = AckOutcome.REJECT


class UnsupportedVersionId(Hl7Error):
    """MSH-12 is outside 2.3 to 2.8.x: AR 203."""

    code = 203
    code_text = "Unsupported version id"
    outcome = AckOutcome.REJECT


class UnknownKeyIdentifier(Hl7Error):
    """The message refers to a record the receiver does not have (raised by the pipeline, not here)."""

    code = 204
    code_text = "Unknown key identifier"


class DuplicateKeyIdentifier(Hl7Error):
    """The same MSH-3+MSH-4+MSH-10 arrived again with a different payload (raised by the pipeline)."""

    code = 205
    code_text = "Duplicate key identifier"


class ApplicationInternalError(Hl7Error):
    """The receiver failed (a bug, or the store). REJECT when a re-send may succeed (store down)."""

    code = 207
    code_text = "Application internal error"

    def __init__(
        self, message: str, location: ErrorLocation | None = None, *, retryable: bool = False
    ) -> None:
        super().__init__(message, location)
        self.outcome = AckOutcome.REJECT if retryable else AckOutcome.ERROR
