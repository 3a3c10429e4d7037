"""ORM^O01 / OMI^O23 order groups → ServiceRequest, after IG maps ORC[ServiceRequest], OBR[ServiceRequest].

The IG has an ORM_O01 message map but none for OMI_O23; OMI is mapped with the same ORC/OBR maps plus
IPC (imaging procedure control), which the IG does not cover. Choices made where the IG is silent or
leaves an "implementation level decision":

* ``identifier``: placer number OBR-2, else ORC-2 (type PLAC); filler number OBR-3, else ORC-3 (FILL);
  accession IPC-1, else OBR-18 (IHE RAD TF-2 puts the accession in OBR-18 for v2.3.1), type ACSN as in
  the HL7 Europe imaging IG; Study Instance UID IPC-3 or ZDS-1.1 → ``system = urn:dicom:uid``,
  ``value = urn:oid:<uid>`` (hl7-eu imaging IG ``im-identifiers``). Order numbers without a namespace get
  the sending application (MSH-3) as their authority; accessions without an issuer get the sending
  facility (MSH-4), the DICOM notion of Issuer of Accession Number.
* The conditional-update key is the placer number, else the filler number, else the accession number.
* ``status``: ORC-5 via ConceptMap OrderStatus; if ORC-5 is empty or unmapped, ORC-1 via ConceptMap
  OrderControlCode[ServiceRequest.status]; if neither maps (XO, SC …) ``unknown`` with a warning.
* ``code``: OBR-4, else OBR-44 (procedure code), as a CodeableConcept; ``category``: the DICOM modality
  (IPC-5, else OBR-24) coded in DCM.
* ``occurrenceDateTime``: TQ1-7, else OBR-27.4, ORC-7.4, OBR-36, OBR-6 (first valid).
* ``priority``: TQ1-9, else ORC-7.6/OBR-27.6, else OBR-5, via ConceptMap v2-0485 → request-priority
  (S stat, A asap, R routine; other codes are not mapped).
* ``requester``: ORC-12, else OBR-16 (logical reference); ``reasonCode``: OBR-31; ``authoredOn``: ORC-9
  when ORC-1 = NW; ``note``: NTE following ORC/OBR (before any OBX) and OBR-13 (relevant clinical info).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mappings.hl7v2.bundle import IdentifierKey
from mappings.hl7v2.datatypes import (
    DICOM_UID,
    MappingOptions,
    codeable_concept_from_cwe,
    fhir_datetime,
    hd_system,
    identifier_from_ei,
    make_identifier,
    reference_from_xcn,
    value,
)
from mappings.hl7v2.er7 import Message, Repetition, Segment
from mappings.hl7v2.errors import ErrorLocation, RequiredFieldMissing, TableValueNotFound

DCM = "http://dicom.nema.org/resources/ontology/DCM"
DICOM_UID_SYSTEM = "urn:dicom:uid"

# IG ConceptMap OrderStatus (table 0038 → request-status)
ORDER_STATUS = {"CA": "revoked", "CM": "completed", "DC": "revoked", "ER": "entered-in-error",
                "HD": "on-hold", "IP": "active", "RP": "revoked", "SC": "active"}
# IG ConceptMap OrderControlCode[ServiceRequest.status] (table 0119; codes without a target omitted)
ORDER_CONTROL_STATUS = {
    "AF": "active", "CA": "active", "CR": "revoked", "DC": "revoked", "DF": "revoked", "DR": "revoked",
    "FU": "completed", "HD": "active", "HR": "on-hold", "NW": "active", "OC": "revoked",
    "OD": "revoked", "OH": "on-hold", "OK": "active", "PR": "active", "PY": "active", "RL": "active",
    "RO": "active", "RQ": "active",
}
# Every code of HL7 table 0119 (order control codes), as listed in the same IG ConceptMap
ORDER_CONTROL_CODES = frozenset({
    "AF", "CA", "CH", "CN", "CP", "CR", "DC", "DE", "DF", "DR", "FU", "HD", "HR", "LI", "NA", "NW", "OC",
    "OD", "OE", "OF", "OH", "OK", "OP", "OR", "PA", "PR", "PY", "RE", "RF", "RL", "RO", "RP", "RQ", "RR",
    "RU", "SC", "SN", "SR", "SS", "UA", "UC", "UD", "UF", "UH", "UM", "UN", "UR", "UX", "XO", "XR", "XX",
    "MC",
})
# IG ConceptMap v2-0485 → request-priority
PRIORITY = {"S": "stat", "A": "asap", "R": "routine"}


@dataclass(frozen=True)
class OrderGroup:
    """The segments of one order (ORC with its OBR, timing, imaging control, Z-segments and notes)."""

    index: int
    orc: Segment | None = None
    obr: Segment | None = None
    tq1: tuple[Segment, ...] = ()
    ipc: tuple[Segment, ...] = ()
    zds: tuple[Segment, ...] = ()
    notes: tuple[Segment, ...] = ()


@dataclass
class _Open:
    index: int
    orc: Segment | None = None
    obr: Segment | None = None
    tq1: list[Segment] = field(default_factory=list)
    ipc: list[Segment] = field(default_factory=list)
    zds: list[Segment] = field(default_factory=list)
    notes: list[Segment] = field(default_factory=list)
    in_observation: bool = False

    def close(self) -> OrderGroup:
        return OrderGroup(self.index, self.orc, self.obr, tuple(self.tq1), tuple(self.ipc),
                          tuple(self.zds), tuple(self.notes))


def order_groups(message: Message) -> list[OrderGroup]:
    """Split an ORM/OMI into order groups: each ORC starts one; an OBR with no ORC before it, too."""
    groups: list[OrderGroup] = []
    current: _Open | None = None
    for seg in message.segments:
        name = seg.name
        if name == "ORC" or (name == "OBR" and (current is None or current.obr is not None)):
            if current is not None:
                groups.append(current.close())
            current = _Open(len(groups) + 1)
        if current is None:
            continue
        if name == "ORC":
            current.orc = seg
        elif name == "OBR":
            current.obr = seg
        elif name == "TQ1":
            current.tq1.append(seg)
        elif name == "IPC":
            current.ipc.append(seg)
        elif name == "ZDS":
            current.zds.append(seg)
        elif name == "OBX":
            current.in_observation = True
        elif name == "NTE" and not current.in_observation:
            current.notes.append(seg)
    if current is not None:
        groups.append(current.close())
    return groups


@dataclass(frozen=True)
class OrderMapping:
    """A ServiceRequest built from one order group, with its key identifier."""

    resource: dict[str, Any]
    key: IdentifierKey
    study_instance_uids: tuple[str, ...]
    accession: IdentifierKey | None


def _first_field(candidates: list[tuple[Segment | None, int]]) -> Repetition | None:
    """First repetition among ``candidates`` whose first component has a value (identifiers)."""
    for seg, n in candidates:
        if seg is not None and value(seg.first(n)):
            return seg.first(n)
    return None


def _first_present(candidates: list[tuple[Segment | None, int]]) -> Repetition | None:
    """First repetition among ``candidates`` with any content (a name or text without a code counts)."""
    for seg, n in candidates:
        if seg is None:
            continue
        rep = seg.first(n)
        if not rep.is_null and rep.raw.strip(seg.encoding.component + seg.encoding.subcomponent + " "):
            return rep
    return None


def _study_uids(group: OrderGroup, warnings: list[str]) -> list[str]:
    uids: list[str] = []
    sources = [(seg, 3) for seg in group.ipc] + [(seg, 1) for seg in group.zds]
    for seg, n in sources:
        uid = value(seg.first(n))
        if not uid:
            continue
        if not DICOM_UID.match(uid) or len(uid) > 64:
            warnings.append(f"{seg.name}-{n} {uid!r} is not a DICOM UID; Study Instance UID not set")
        elif uid not in uids:
            uids.append(uid)
    return uids


def _status(group: OrderGroup, warnings: list[str]) -> str:
    orc = group.orc
    order_status = value(orc.first(5)).upper() if orc else ""
    control = value(orc.first(1)).upper() if orc else ""
    if order_status in ORDER_STATUS:
        return ORDER_STATUS[order_status]
    if control in ORDER_CONTROL_STATUS:
        return ORDER_CONTROL_STATUS[control]
    warnings.append(f"ORC-1 {control!r} / ORC-5 {order_status!r} give no ServiceRequest status; unknown")
    return "unknown"


def _occurrence(group: OrderGroup, options: MappingOptions, warnings: list[str]) -> str | None:
    candidates: list[tuple[Segment | None, int, int]] = [(t, 7, 1) for t in group.tq1[:1]]
    candidates += [(group.obr, 27, 4), (group.orc, 7, 4), (group.obr, 36, 1), (group.obr, 6, 1)]
    for seg, n, comp in candidates:
        if seg is None:
            continue
        raw = value(seg.first(n), comp)
        if not raw:
            continue
        stamp = fhir_datetime(raw, options)
        if stamp:
            return stamp
        warnings.append(f"{seg.name}-{n} {raw!r} is not a date/time; ignored")
    return None


def _priority(group: OrderGroup, warnings: list[str]) -> str | None:
    candidates: list[tuple[Segment | None, int, int]] = [(t, 9, 1) for t in group.tq1[:1]]
    candidates += [(group.orc, 7, 6), (group.obr, 27, 6), (group.obr, 5, 1)]
    for seg, n, comp in candidates:
        if seg is None:
            continue
        code = value(seg.first(n), comp).upper()
        if not code:
            continue
        if code in PRIORITY:
            return PRIORITY[code]
        warnings.append(f"{seg.name}-{n} priority {code!r} has no FHIR request-priority; not set")
        return None
    return None


def _notes(group: OrderGroup) -> list[dict[str, str]]:
    texts: list[str] = []
    for nte in group.notes:
        text = "\n".join(rep.text() for rep in nte.repetitions(3)).strip()
        if text:
            texts.append(text)
    if group.obr is not None:
        clinical = "\n".join(rep.text() for rep in group.obr.repetitions(13)).strip()
        if clinical and clinical != '""':
            texts.append(clinical)
    return [{"text": t} for t in texts]


def map_order(
    group: OrderGroup,
    msh: Segment,
    patient_reference: str,
    encounter_reference: str | None,
    options: MappingOptions,
    warnings: list[str],
) -> OrderMapping:
    """Build the ServiceRequest of one order group.

    Raises
    ------
    RequiredFieldMissing
        ORC-1 empty, or no placer, filler or accession number to key the order on.
    TableValueNotFound
        ORC-1 is not an HL7 table 0119 code.
    """
    orc, obr = group.orc, group.obr
    if orc is None:
        warnings.append(f"order {group.index} has OBR but no ORC; status from OBR only")
    else:
        control = value(orc.first(1)).upper()
        if not control:
            raise RequiredFieldMissing("ORC-1 (order control) is empty",
                                       ErrorLocation("ORC", group.index, 1))
        if control not in ORDER_CONTROL_CODES:
            raise TableValueNotFound(f"ORC-1 {control!r} is not an order control code (table 0119)",
                                     ErrorLocation("ORC", group.index, 1))
    application = hd_system(msh.first(3), 1, options)
    facility = hd_system(msh.first(4), 1, options) or application

    placer_rep = _first_field([(obr, 2), (orc, 2)])
    filler_rep = _first_field([(obr, 3), (orc, 3)])
    placer = filler = accession = None
    if placer_rep is not None:
        placer = identifier_from_ei(placer_rep, "PLAC", options, application)
    if filler_rep is not None:
        filler = identifier_from_ei(filler_rep, "FILL", options, application)
    ipc = group.ipc[0] if group.ipc else None
    if ipc is not None and value(ipc.first(1)):
        accession = identifier_from_ei(ipc.first(1), "ACSN", options, facility)
    elif obr is not None and value(obr.first(18)):
        accession = make_identifier(value(obr.first(18)), facility, "ACSN")
    identifiers = [i for i in (placer, filler, accession) if i]
    key_ident = placer or filler or accession
    if key_ident is None:
        raise RequiredFieldMissing(
            "no placer (ORC-2/OBR-2), filler (ORC-3/OBR-3) or accession number (IPC-1/OBR-18)",
            ErrorLocation("ORC" if orc else "OBR", group.index, 2),
        )
    uids = _study_uids(group, warnings)
    for uid in uids:
        identifiers.append({
            "type": {"coding": [{"system": DCM, "code": "110180", "display": "Study Instance UID"}]},
            "system": DICOM_UID_SYSTEM,
            "value": f"urn:oid:{uid}",
        })

    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "identifier": identifiers,
        "status": _status(group, warnings),
        "intent": "order",
    }
    modalities: list[str] = []
    for seg, n in [(s, 5) for s in group.ipc] + [(obr, 24)]:
        code = value(seg.first(n)).upper() if seg is not None else ""
        if code and code not in modalities:
            modalities.append(code)
    if modalities:
        request["category"] = [{"coding": [{"system": DCM, "code": m}]} for m in modalities]
    priority = _priority(group, warnings)
    if priority:
        request["priority"] = priority
    code_rep = _first_present([(obr, 4), (obr, 44)])
    concept = codeable_concept_from_cwe(code_rep, options) if code_rep else None
    if concept:
        request["code"] = concept
    else:
        warnings.append(f"order {group.index}: OBR-4 and OBR-44 are empty; ServiceRequest.code not set")
    request["subject"] = {"reference": patient_reference}
    if encounter_reference:
        request["encounter"] = {"reference": encounter_reference}
    occurrence = _occurrence(group, options, warnings)
    if occurrence:
        request["occurrenceDateTime"] = occurrence
    if orc is not None and value(orc.first(1)).upper() == "NW":
        authored = fhir_datetime(value(orc.first(9)), options)
        if authored:
            request["authoredOn"] = authored
    requester_rep = _first_present([(orc, 12), (obr, 16)])
    requester = reference_from_xcn(requester_rep, options) if requester_rep else None
    if requester:
        request["requester"] = requester
    if obr is not None:
        reasons = [c for c in (codeable_concept_from_cwe(r, options) for r in obr.repetitions(31)) if c]
        if reasons:
            request["reasonCode"] = reasons
    notes = _notes(group)
    if notes:
        request["note"] = notes
    acc_key = IdentifierKey.of(accession) if accession else None
    return OrderMapping(request, IdentifierKey.of(key_ident), tuple(uids), acc_key)
