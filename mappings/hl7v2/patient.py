"""PID → Patient and MRG → prior identifiers, after the HL7 v2-to-FHIR IG segment map PID[Patient].

Elements mapped (IG PID[Patient]): PID-2/3/4 → ``identifier`` (CX[Identifier]); PID-5 → ``name``;
PID-7 → ``birthDate`` (+ extension ``patient-birthTime`` when a time is sent); PID-8 → ``gender``
(ConceptMap AdministrativeSex: A and N → other); PID-11 → ``address``; PID-13/14 → ``telecom``
(home/work by default); PID-29/30 → ``deceased[x]``. Other PID fields (race, language, account …) are not
needed for dose records and are not mapped.

The *key* identifier (the conditional-update key) is the first PID-3 repetition with a value, else PID-2,
else PID-4. When an identifier has no assigning authority (CX-4), the sending facility (MSH-4, else MSH-3)
stands in as the authority, so identifiers from one RIS stay in one system; a warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mappings.hl7v2.bundle import IdentifierKey
from mappings.hl7v2.datatypes import (
    MappingOptions,
    address_from_xad,
    contact_point_from_xtn,
    fhir_date,
    fhir_datetime,
    hd_system,
    human_name_from_xpn,
    identifier_from_cx,
    value,
)
from mappings.hl7v2.er7 import Segment
from mappings.hl7v2.errors import ErrorLocation, RequiredFieldMissing

BIRTH_TIME = "http://hl7.org/fhir/StructureDefinition/patient-birthTime"

# IG ConceptMap "AdministrativeSex" (table 0001 → administrative-gender)
GENDER = {"F": "female", "M": "male", "O": "other", "U": "unknown", "A": "other", "N": "other"}


@dataclass(frozen=True)
class PatientMapping:
    """A Patient built from PID: the resource, its key identifier, the elements sent as ``""``."""

    resource: dict[str, Any]
    key: IdentifierKey
    cleared: frozenset[str]
    warnings: tuple[str, ...]


def default_authority(msh: Segment, options: MappingOptions) -> str | None:
    """The system standing in for a missing assigning authority: MSH-4 (facility), else MSH-3."""
    for n in (4, 3):
        system = hd_system(msh.first(n), 1, options)
        if system:
            return system
    return None


def _identifiers(
    pid: Segment, fallback: str | None, options: MappingOptions, warnings: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    identifiers: list[dict[str, Any]] = []
    key: dict[str, Any] | None = None
    seen: set[tuple[str | None, str]] = set()
    for n in (3, 2, 4):
        for i, rep in enumerate(pid.repetitions(n), start=1):
            ident = identifier_from_cx(rep, options, fallback)
            if ident is None:
                continue
            if not value(rep, 4, 1) and not value(rep, 4, 2):
                warnings.append(f"PID-{n}[{i}] {ident['value']!r} has no assigning authority (CX-4); "
                                f"using the sending facility as its system")
            k = (ident.get("system"), ident["value"])
            if k in seen:
                continue
            seen.add(k)
            identifiers.append(ident)
            if key is None:
                key = ident
                if n != 3:
                    warnings.append(f"PID-3 is empty; PID-{n} is used as the patient key")
    return identifiers, key


def map_pid(pid: Segment, msh: Segment, options: MappingOptions) -> PatientMapping:
    """Build the Patient for one PID segment.

    Raises
    ------
    RequiredFieldMissing
        When PID-2, PID-3 and PID-4 hold no identifier (the Patient could not be matched again).
    """
    warnings: list[str] = []
    identifiers, key = _identifiers(pid, default_authority(msh, options), options, warnings)
    if key is None:
        raise RequiredFieldMissing(
            "PID-3 (patient identifier list) is empty", ErrorLocation("PID", 1, 3)
        )
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": identifiers}
    cleared: set[str] = set()

    names = [n for n in (human_name_from_xpn(r) for r in pid.repetitions(5)) if n]
    if names:
        patient["name"] = names
    elif pid.is_null(5):
        cleared.add("name")

    birth_raw = value(pid.first(7))
    if birth_raw:
        birth = fhir_date(birth_raw)
        if birth is None:
            warnings.append(f"PID-7 {birth_raw!r} is not a date; birthDate not set")
        else:
            patient["birthDate"] = birth
            if len(birth_raw) > 8:
                stamp = fhir_datetime(birth_raw, options)
                if stamp and "T" in stamp:
                    patient["_birthDate"] = {"extension": [{"url": BIRTH_TIME, "valueDateTime": stamp}]}
    elif pid.is_null(7):
        cleared.update({"birthDate", "_birthDate"})

    sex = value(pid.first(8)).upper()
    if sex:
        gender = GENDER.get(sex) or GENDER.get(sex.rstrip("-^ "))
        if gender:
            patient["gender"] = gender
        else:
            warnings.append(f"PID-8 {sex!r} is not in HL7 table 0001; gender not set")
    elif pid.is_null(8):
        cleared.add("gender")

    addresses = [a for a in (address_from_xad(r) for r in pid.repetitions(11)) if a]
    if addresses:
        patient["address"] = addresses
    elif pid.is_null(11):
        cleared.add("address")

    telecom = [
        t
        for n, use in ((13, "home"), (14, "work"))
        for t in (contact_point_from_xtn(r, use) for r in pid.repetitions(n))
        if t
    ]
    if telecom:
        patient["telecom"] = telecom
    elif pid.is_null(13) or pid.is_null(14):
        cleared.add("telecom")

    death_raw = value(pid.first(29))
    deceased_flag = value(pid.first(30)).upper()
    if death_raw and fhir_datetime(death_raw, options):
        patient["deceasedDateTime"] = fhir_datetime(death_raw, options)
    elif deceased_flag in ("Y", "N"):
        patient["deceasedBoolean"] = deceased_flag == "Y"
    elif pid.is_null(29) or pid.is_null(30):
        cleared.update({"deceasedDateTime", "deceasedBoolean"})

    return PatientMapping(patient, IdentifierKey.of(key), frozenset(cleared), tuple(warnings))


def prior_identifiers(
    mrg: Segment, msh: Segment, options: MappingOptions
) -> list[dict[str, Any]]:
    """MRG-1 (prior patient identifier list) as Identifiers, same system rules as PID-3."""
    fallback = default_authority(msh, options)
    return [i for i in (identifier_from_cx(r, options, fallback) for r in mrg.repetitions(1)) if i]
