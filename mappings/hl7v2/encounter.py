"""PV1 → Encounter, after the HL7 v2-to-FHIR IG segment map PV1[Encounter].

Mapped: PV1-19 visit number → ``identifier`` (the conditional-update key; without it no Encounter is
written, because a re-sent message could not find it again and would duplicate it); PV1-2 → ``class``
(ConceptMap PatientClass[EncounterClass]); ``status`` from PV1-45 (discharged → finished), else the
trigger event (ConceptMap Event[EncounterStatus]), else PV1-2 (ConceptMap PatientClass[EncounterStatus]);
PV1-44/45 → ``period``; PV1-7/8/9/17 → ``participant`` (attender, referrer, consultant, admitter) as
logical references (no Practitioner resources, see ``reference_from_xcn``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mappings.hl7v2.bundle import IdentifierKey
from mappings.hl7v2.datatypes import (
    MappingOptions,
    fhir_datetime,
    identifier_from_cx,
    reference_from_xcn,
    value,
)
from mappings.hl7v2.er7 import Segment
from mappings.hl7v2.patient import default_authority

V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V2_0004 = "http://terminology.hl7.org/CodeSystem/v2-0004"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

# IG ConceptMap PatientClass[EncounterClass] (table 0004)
PATIENT_CLASS = {
    "E": (V3_ACT_CODE, "EMER", "emergency"),
    "I": (V3_ACT_CODE, "IMP", "inpatient encounter"),
    "O": (V3_ACT_CODE, "AMB", "ambulatory"),
    "P": (V3_ACT_CODE, "PRENC", "pre-admission"),
    "R": (V2_0004, "R", "Recurring patient"),
    "B": (V2_0004, "B", "Obstetrics"),
    "C": (V2_0004, "C", "Commercial Account"),
    "N": (V2_0004, "N", "Not Applicable"),
    "U": (V2_0004, "U", "Unknown"),
}
# IG ConceptMap Event[EncounterStatus] (table 0003)
EVENT_STATUS = {"A01": "in-progress", "A02": "in-progress", "A03": "finished", "A04": "planned",
                "A05": "planned", "A08": "unknown", "A11": "cancelled", "A13": "in-progress"}
# IG ConceptMap PatientClass[EncounterStatus]
CLASS_STATUS = {"E": "in-progress", "I": "in-progress", "O": "in-progress", "P": "planned",
                "R": "in-progress", "B": "in-progress", "C": "in-progress", "N": "in-progress",
                "U": "unknown"}
PARTICIPANTS = ((7, "ATND", "attender"), (8, "REF", "referrer"), (9, "CON", "consultant"),
                (17, "ADM", "admitter"))


@dataclass(frozen=True)
class EncounterMapping:
    """An Encounter built from PV1 and its key identifier."""

    resource: dict[str, Any]
    key: IdentifierKey


def map_pv1(
    pv1: Segment,
    msh: Segment,
    trigger_event: str,
    patient_reference: str,
    options: MappingOptions,
    warnings: list[str],
) -> EncounterMapping | None:
    """Build the Encounter for a PV1 segment, or None (with a warning) when PV1-19 is empty."""
    visit = identifier_from_cx(pv1.first(19), options, default_authority(msh, options))
    if visit is None:
        warnings.append("PV1-19 (visit number) is empty; no Encounter written")
        return None
    patient_class = value(pv1.first(2)).upper()
    system, code, display = PATIENT_CLASS.get(patient_class, (V2_0004, "U", "Unknown"))
    if patient_class and patient_class not in PATIENT_CLASS:
        warnings.append(f"PV1-2 {patient_class!r} is not in HL7 table 0004; class set to unknown")
    start = fhir_datetime(value(pv1.first(44)), options)
    end = fhir_datetime(value(pv1.first(45)), options)
    status = EVENT_STATUS.get(trigger_event) or CLASS_STATUS.get(patient_class, "unknown")
    if end:
        status = "finished"
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "identifier": [visit],
        "status": status,
        "class": {"system": system, "code": code, "display": display},
        "subject": {"reference": patient_reference},
    }
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    if period:
        encounter["period"] = period
    participants = []
    for n, role, role_display in PARTICIPANTS:
        for rep in pv1.repetitions(n):
            ref = reference_from_xcn(rep, options)
            if ref:
                participants.append({
                    "type": [{"coding": [{"system": V3_PARTICIPATION, "code": role,
                                          "display": role_display}]}],
                    "individual": ref,
                })
    if participants:
        encounter["participant"] = participants
    return EncounterMapping(encounter, IdentifierKey.of(visit))
