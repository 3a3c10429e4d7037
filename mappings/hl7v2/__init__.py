"""HL7 v2 (RIS) → FHIR R4: parsing, mapping to transaction Bundles, and ACKs. Pure: no I/O.

Flow for one message (bytes without MLLP framing)::

    result = process_message(raw)          # parse_message + map_message; raises Hl7Error
    ...commit result.bundle (and result.repoints) durably...
    ack = build_ack(result.header, AckOutcome.ACCEPT)            # AA, or CA in enhanced mode
    # on Hl7Error e:  build_ack(header, e.outcome, e) or build_reject(raw, e)

Why not hl7apy for parsing: measured at 20–50 messages/s (``docs/reference/hl7-dicom-integration.md``
§1.4) against a goal of ≥ 500 order messages/s end-to-end; it silently returns only MSH for LF/CRLF input,
drops Z-segments (ZDS) when grouping, does not decode escapes, and cannot read batches. ``er7`` here reads
only what is asked for (segments split once, fields/components split on access) and decodes escapes and
charsets itself. hl7apy is not used at run time; the tests use it as an independent oracle, checking that
field values read by ``er7`` equal hl7apy's on the real samples.

Modules: ``er7`` (bytes → segments, delimiters, escapes, charsets, batches), ``datatypes`` (CX, XPN, XAD,
XTN, CWE, XCN, DTM → FHIR), ``patient`` (PID/MRG), ``encounter`` (PV1), ``order`` (ORC/OBR/TQ1/IPC/ZDS),
``messages`` (which messages are accepted and what they write), ``bundle`` (conditional upserts and v2
update semantics), ``ack`` (ACK/NAK, duplicate key), ``errors`` (table 0357 codes).
"""

from mappings.hl7v2.ack import ack_code, build_ack, build_batch_ack, build_reject, duplicate_key
from mappings.hl7v2.bundle import IdentifierKey, Upsert, merge_upsert
from mappings.hl7v2.datatypes import MappingOptions
from mappings.hl7v2.er7 import (
    Batch,
    Message,
    MessageHeader,
    decode_message,
    parse_header,
    parse_message,
    split_messages,
)
from mappings.hl7v2.errors import AckOutcome, ApplicationInternalError, Hl7Error, Hl7ParseError
from mappings.hl7v2.messages import (
    MappingResult,
    PatientRepoint,
    check_header,
    map_message,
    process_message,
)

__all__ = [
    "AckOutcome",
    "ApplicationInternalError",
    "Batch",
    "Hl7Error",
    "Hl7ParseError",
    "IdentifierKey",
    "MappingOptions",
    "MappingResult",
    "Message",
    "MessageHeader",
    "PatientRepoint",
    "Upsert",
    "ack_code",
    "build_ack",
    "build_batch_ack",
    "build_reject",
    "check_header",
    "decode_message",
    "duplicate_key",
    "map_message",
    "merge_upsert",
    "parse_header",
    "parse_message",
    "process_message",
    "split_messages",
]
