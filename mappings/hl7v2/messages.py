"""HL7 v2 message → FHIR R4 transaction Bundle: which messages DACS accepts and what each one writes.

Accepted (everything else is refused with AR 200/201):

* ADT A01, A04, A05, A08, A28, A31 → Patient upsert (+ Encounter when PV1 carries a visit number).
  The IG message maps ADT_A01/A05 are followed for PID and PV1.
* ADT A40 (merge patient identifier list; no IG map, FHIR core ``Patient.link``): for each PID/MRG pair,
  the surviving Patient (PID) gets ``link`` type ``replaces`` → the merged one; the merged Patient (keyed
  on the first MRG-1 identifier, all MRG-1 identifiers kept) gets ``replaced-by`` → the survivor and
  ``active = false``. Moving the merged patient's other resources needs the store, so
  the result lists (old identifier, new identifier) pairs in :attr:`MappingResult.repoints`.
* ADT A47 (change patient identifier list): one conditional update matching *either* the old (MRG-1) or
  the new (PID-3) identifier (a re-send finds the already changed record), writing the new identifier
  and dropping the old one (:attr:`Upsert.drop_identifiers`).
* ORM^O01 and OMI^O23 → Patient upsert, Encounter (PV1), one ServiceRequest per order group.

Header checks (HL7 v2.5 §2.9.2): MSH-12 must be 2.3 to 2.8.x (AR 203), MSH-11 P, D or T (AR 202),
MSH-10 present (AE 101).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mappings.hl7v2.bundle import BundleBuilder, IdentifierKey, Upsert
from mappings.hl7v2.datatypes import MappingOptions, human_name_from_xpn
from mappings.hl7v2.encounter import map_pv1
from mappings.hl7v2.er7 import Message, MessageHeader, Segment, parse_message
from mappings.hl7v2.errors import (
    ErrorLocation,
    RequiredFieldMissing,
    SegmentSequenceError,
    UnsupportedEventCode,
    UnsupportedMessageType,
    UnsupportedProcessingId,
    UnsupportedVersionId,
)
from mappings.hl7v2.order import map_order, order_groups
from mappings.hl7v2.patient import PatientMapping, map_pid, prior_identifiers

SUPPORTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1",
                                "2.8", "2.8.1", "2.8.2"})
PROCESSING_IDS = frozenset({"P", "D", "T"})  # HL7 table 0103
PATIENT_UPDATE_EVENTS = frozenset({"A01", "A04", "A05", "A08", "A28", "A31"})
ORDER_MESSAGES = frozenset({("ORM", "O01"), ("OMI", "O23")})
SUPPORTED_ADT_EVENTS = PATIENT_UPDATE_EVENTS | {"A40", "A47"}


@dataclass(frozen=True)
class PatientRepoint:
    """After an A40 merge: resources of the patient keyed ``old`` must point at the patient ``new``."""

    old: IdentifierKey
    new: IdentifierKey


@dataclass(frozen=True)
class MappingResult:
    """What one accepted message asks the store to do.

    Attributes
    ----------
    header
        The message's MSH (routing, control id, ACK modes).
    bundle
        FHIR R4 transaction Bundle (plain dict), or None when there is nothing to write.
    upserts
        One per Bundle entry: conditional URL, elements cleared by ``""``, identifiers to drop.
    repoints
        A40 merges the pipeline must apply to other resources (old patient → new patient).
    warnings
        Decoding and mapping notes (charset guesses, ignored invalid values, fallbacks used).
    """

    header: MessageHeader
    bundle: dict[str, Any] | None
    upserts: tuple[Upsert, ...]
    repoints: tuple[PatientRepoint, ...]
    warnings: tuple[str, ...]

    @property
    def control_id(self) -> str:
        return self.header.control_id

    @property
    def message_type(self) -> str:
        return self.header.message_type


def check_header(header: MessageHeader) -> None:
    """Refuse what DACS cannot accept, before any mapping (raises the matching Hl7Error)."""
    if header.version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionId(
            f"HL7 version {header.version!r} is not supported (2.3 to 2.8.x)", ErrorLocation("MSH", 1, 12)
        )
    if header.processing_id not in PROCESSING_IDS:
        raise UnsupportedProcessingId(
            f"processing id {header.processing_id!r} is not P, D or T", ErrorLocation("MSH", 1, 11)
        )
    if not header.control_id:
        raise RequiredFieldMissing("MSH-10 (message control id) is empty", ErrorLocation("MSH", 1, 10))
    code, event = header.message_code, header.trigger_event
    if (code, event) in ORDER_MESSAGES:
        return
    if code == "ADT":
        if event not in SUPPORTED_ADT_EVENTS:
            raise UnsupportedEventCode(f"ADT^{event} is not supported", ErrorLocation("MSH", 1, 9, 1, 2))
        return
    raise UnsupportedMessageType(
        f"message type {header.message_type!r} is not supported", ErrorLocation("MSH", 1, 9, 1, 1)
    )


def _message_key(header: MessageHeader) -> str:
    return "\x1f".join((header.sending_application, header.sending_facility, header.control_id))


def _require(message: Message, name: str) -> Any:
    seg = message.segment(name)
    if seg is None:
        raise SegmentSequenceError(f"required segment {name} is missing", ErrorLocation(name, 1))
    return seg


def _put_patient(builder: BundleBuilder, mapped: PatientMapping, **extra: Any) -> Upsert:
    resource = dict(mapped.resource)
    resource.update(extra)
    return builder.put(resource, (mapped.key,), mapped.cleared)


def _put_encounter(
    message: Message, builder: BundleBuilder, patient_url: str, options: MappingOptions, warnings: list[str]
) -> str | None:
    pv1 = message.segment("PV1")
    if pv1 is None:
        return None
    enc = map_pv1(pv1, message.msh, message.header.trigger_event, patient_url, options, warnings)
    if enc is None:
        return None
    return builder.put(enc.resource, (enc.key,)).full_url


def _map_patient_update(message: Message, builder: BundleBuilder, options: MappingOptions,
                        warnings: list[str]) -> None:
    mapped = map_pid(_require(message, "PID"), message.msh, options)
    warnings.extend(mapped.warnings)
    patient = _put_patient(builder, mapped)
    _put_encounter(message, builder, patient.full_url, options, warnings)


def _merge_pairs(message: Message) -> list[tuple[Segment, Segment]]:
    """(PID, MRG) of each patient group: an A40 may merge several records, one MRG after each PID."""
    pairs: list[tuple[Segment, Segment]] = []
    pid: Segment | None = None
    for seg in message.segments:
        if seg.name == "PID":
            pid = seg
        elif seg.name == "MRG":
            if pid is None:
                raise SegmentSequenceError("MRG before any PID", ErrorLocation("MRG", len(pairs) + 1))
            pairs.append((pid, seg))
    if not pairs:
        raise SegmentSequenceError("required segment MRG is missing", ErrorLocation("MRG", 1))
    return pairs


def _map_merge(message: Message, builder: BundleBuilder, options: MappingOptions,
               warnings: list[str]) -> list[PatientRepoint]:
    """A40: MRG-1 lists the identifiers of one non-surviving record; the first one is its key."""
    repoints: list[PatientRepoint] = []
    for index, (pid, mrg) in enumerate(_merge_pairs(message), start=1):
        survivor = map_pid(pid, message.msh, options)
        warnings.extend(survivor.warnings)
        olds = [i for i in prior_identifiers(mrg, message.msh, options)
                if IdentifierKey.of(i) != survivor.key]
        if not olds:
            raise RequiredFieldMissing("MRG-1 (prior patient identifier list) is empty",
                                       ErrorLocation("MRG", index, 1))
        old_key = IdentifierKey.of(olds[0])
        survivor_url = builder.full_url_for("Patient", (survivor.key,))
        old_url = builder.full_url_for("Patient", (old_key,))
        _put_patient(builder, survivor, active=True,
                     link=[{"other": {"reference": old_url}, "type": "replaces"}])
        merged: dict[str, Any] = {"resourceType": "Patient", "identifier": olds, "active": False,
                                  "link": [{"other": {"reference": survivor_url}, "type": "replaced-by"}]}
        prior_name = [n for n in (human_name_from_xpn(r) for r in mrg.repetitions(7)) if n]
        if prior_name:
            merged["name"] = prior_name
        builder.put(merged, (old_key,), full_url=old_url)
        repoints.append(PatientRepoint(old=old_key, new=survivor.key))
    return repoints


def _map_identifier_change(message: Message, builder: BundleBuilder, options: MappingOptions,
                           warnings: list[str]) -> None:
    mapped = map_pid(_require(message, "PID"), message.msh, options)
    warnings.extend(mapped.warnings)
    olds = [IdentifierKey.of(i) for i in prior_identifiers(_require(message, "MRG"), message.msh, options)]
    olds = [k for k in olds if k != mapped.key]
    if not olds:
        raise RequiredFieldMissing("MRG-1 (prior patient identifier) is empty", ErrorLocation("MRG", 1, 1))
    builder.put(dict(mapped.resource), (olds[0], mapped.key), mapped.cleared,
                drop_identifiers=frozenset(olds))


def _map_order_message(message: Message, builder: BundleBuilder, options: MappingOptions,
                       warnings: list[str]) -> None:
    groups = order_groups(message)
    if not groups:
        raise SegmentSequenceError("the order message has no ORC/OBR segment", ErrorLocation("ORC", 1))
    mapped = map_pid(_require(message, "PID"), message.msh, options)
    warnings.extend(mapped.warnings)
    patient = _put_patient(builder, mapped)
    encounter_url = _put_encounter(message, builder, patient.full_url, options, warnings)
    for group in groups:
        order = map_order(group, message.msh, patient.full_url, encounter_url, options, warnings)
        builder.put(order.resource, (order.key,))


def map_message(message: Message, options: MappingOptions | None = None) -> MappingResult:
    """Map a parsed message to a transaction Bundle (pure; see the module docstring for the rules).

    Raises
    ------
    Hl7Error
        A subclass naming the table 0357 condition (unsupported type/version, missing segment/field).
    """
    options = options or MappingOptions()
    header = message.header
    check_header(header)
    builder = BundleBuilder(_message_key(header))
    warnings: list[str] = list(message.warnings)
    repoints: list[PatientRepoint] = []
    code, event = header.message_code, header.trigger_event
    if (code, event) in ORDER_MESSAGES:
        _map_order_message(message, builder, options, warnings)
    elif event in PATIENT_UPDATE_EVENTS:
        _map_patient_update(message, builder, options, warnings)
    elif event == "A40":
        repoints = _map_merge(message, builder, options, warnings)
    else:
        _map_identifier_change(message, builder, options, warnings)
    bundle = builder.bundle() if builder.entries else None
    return MappingResult(header, bundle, tuple(builder.upserts), tuple(repoints), tuple(warnings))


def process_message(raw: bytes, options: MappingOptions | None = None) -> MappingResult:
    """Parse and map one message's bytes (MLLP framing removed). Raises Hl7Error subclasses."""
    return map_message(parse_message(raw), options)
