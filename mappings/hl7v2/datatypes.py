"""HL7 v2 data types → FHIR R4 data types (plain dicts), after the HL7 v2-to-FHIR IG datatype maps.

IG maps followed (``HL7/v2-to-fhir``, STU1): CX[Identifier], XPN[HumanName], XAD[Address],
XTN[ContactPoint], CWE/CE[CodeableConcept], DTM[dateTime], XCN[Practitioner] (here as a logical
Reference, see :func:`reference_from_xcn`). Concept maps are reproduced from the IG CSVs named beside
each table. Where the IG leaves a choice to the implementer, the choice is documented on the function.

Identifier systems (IG: CX.4 → ``Identifier.system`` when the assigning authority is a system):

* HD with universal id type ``ISO`` (or an OID-shaped universal id) → ``urn:oid:<oid>``;
* ``UUID``/``GUID`` → ``urn:uuid:<uuid>``; ``URI`` → the URI itself;
* otherwise the namespace id → ``<MappingOptions.local_system_base>authority:<namespace, %-encoded>``,
  e.g. ``urn:dacs:hl7v2:authority:ADT1``. A site can set its own base (an https URL it owns).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

from mappings.hl7v2.er7 import HL7_NULL, Repetition, Segment

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
"""HL7 table 0203 (identifier type) as a FHIR code system."""

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DICOM_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
"""PS3.5 §9.1 UID syntax (length ≤ 64 is checked separately)."""


@dataclass(frozen=True)
class MappingOptions:
    """Site choices the HL7 v2 mapping needs.

    Attributes
    ----------
    timezone
        Zone of HL7 times that carry no offset (HL7 leaves it to the sender's local time; FHIR requires
        an offset on any dateTime with a time). Set it to the RIS's zone.
    local_system_base
        Prefix of URIs minted for local assigning authorities and local coding systems.
    """

    timezone: dt.tzinfo = dt.UTC
    local_system_base: str = "urn:dacs:hl7v2:"


def _load_coding_systems() -> dict[str, str]:
    text = resources.files("mappings.hl7v2").joinpath("data/coding_systems.json").read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


CODING_SYSTEMS = _load_coding_systems()


def value(rep: Repetition, component: int = 1, subcomponent: int = 1) -> str:
    """A leaf with surrounding blanks removed and the HL7 null treated as empty."""
    v = rep.get(component, subcomponent).strip()
    return "" if v == HL7_NULL else v


def authority_system(
    namespace: str, universal_id: str, universal_id_type: str, options: MappingOptions
) -> str | None:
    """Identifier.system for an HL7 HD (assigning authority / issuer); see the module docstring."""
    uid_type = universal_id_type.upper()
    if universal_id:
        if uid_type in ("ISO", "") and _OID.match(universal_id):
            return f"urn:oid:{universal_id}"
        if uid_type in ("UUID", "GUID") and _UUID.match(universal_id):
            return f"urn:uuid:{universal_id.lower()}"
        if uid_type == "URI" and ":" in universal_id:
            return universal_id
    if namespace:
        if _OID.match(namespace):
            return f"urn:oid:{namespace}"
        return f"{options.local_system_base}authority:{quote(namespace, safe='')}"
    if universal_id:
        return f"{options.local_system_base}authority:{quote(universal_id, safe='')}"
    return None


def hd_system(rep: Repetition, first: int, options: MappingOptions) -> str | None:
    """System of an HD embedded as components ``first``..``first+2`` (EI) or as one component (CX-4)."""
    return authority_system(value(rep, first), value(rep, first + 1), value(rep, first + 2), options)


def hd_system_from_subcomponents(rep: Repetition, component: int, options: MappingOptions) -> str | None:
    """System of an HD carried in subcomponents of one component (CX-4, XCN-9)."""
    return authority_system(
        value(rep, component, 1), value(rep, component, 2), value(rep, component, 3), options
    )


def make_identifier(value_: str, system: str | None, type_code: str | None = None) -> dict[str, Any]:
    """Identifier with an optional table 0203 type and system."""
    out: dict[str, Any] = {}
    if type_code:
        out["type"] = {"coding": [{"system": V2_0203, "code": type_code}]}
    if system:
        out["system"] = system
    out["value"] = value_
    return out


def identifier_from_cx(
    rep: Repetition, options: MappingOptions, fallback_system: str | None
) -> dict[str, Any] | None:
    """CX → Identifier (IG CX[Identifier]): CX.1 value, CX.4 system, CX.5 type (table 0203)."""
    ident = value(rep, 1)
    if not ident:
        return None
    system = hd_system_from_subcomponents(rep, 4, options) or fallback_system
    return make_identifier(ident, system, value(rep, 5))


def identifier_from_ei(
    rep: Repetition, type_code: str | None, options: MappingOptions, fallback_system: str | None
) -> dict[str, Any] | None:
    """EI → Identifier (IG EI[Identifier]): EI.1 value, EI.2–4 (HD) system, optional table 0203 type."""
    ident = value(rep, 1)
    if not ident:
        return None
    return make_identifier(ident, hd_system(rep, 2, options) or fallback_system, type_code)


# IG ConceptMap "NameType" (table 0200 → name-use)
NAME_USE = {
    "BAD": "old",
    "D": "usual",
    "L": "official",
    "M": "maiden",
    "MSK": "anonymous",
    "N": "nickname",
    "NAV": "temp",
    "R": "official",
    "TEMP": "temp",
}


def human_name_from_xpn(rep: Repetition) -> dict[str, Any] | None:
    """XPN → HumanName: family, given (XPN.2 and XPN.3), suffix (XPN.4, XPN.6), prefix, use (XPN.7)."""
    family = value(rep, 1, 1)
    given = [g for g in (value(rep, 2), value(rep, 3)) if g]
    suffix = [s for s in (value(rep, 4), value(rep, 6)) if s]
    prefix = value(rep, 5)
    name: dict[str, Any] = {}
    use = NAME_USE.get(value(rep, 7).upper())
    if use:
        name["use"] = use
    if family:
        name["family"] = family
    if given:
        name["given"] = given
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = suffix
    return name if (family or given) else None


# IG ConceptMap "AddressType[Use]" (table 0190 → address-use); M (mailing) → Address.type postal.
ADDRESS_USE = {"BA": "old", "BI": "billing", "C": "temp", "B": "work", "H": "home", "O": "work"}


def address_from_xad(rep: Repetition) -> dict[str, Any] | None:
    """XAD → Address: lines (XAD.1.1, XAD.2), city, state, postal code, country, district (XAD.9)."""
    lines = [ln for ln in (value(rep, 1, 1), value(rep, 2)) if ln]
    parts = {
        "city": value(rep, 3),
        "state": value(rep, 4),
        "postalCode": value(rep, 5),
        "country": value(rep, 6),
        "district": value(rep, 9),
    }
    address: dict[str, Any] = {}
    kind = value(rep, 7).upper()
    if kind in ADDRESS_USE:
        address["use"] = ADDRESS_USE[kind]
    if kind == "M":
        address["type"] = "postal"
    if lines:
        address["line"] = lines
    address.update({k: v for k, v in parts.items() if v})
    return address if (lines or any(parts.values())) else None


# IG ConceptMaps "TelecommunicationUseCode" (0201) and "TelecommunicationEquipmentType" (0202)
TELECOM_USE = {"PRN": "home", "WPN": "work", "PRS": "mobile"}
TELECOM_SYSTEM = {
    "PH": "phone",
    "FX": "fax",
    "MD": "other",
    "CP": "phone",
    "SAT": "other",
    "BP": "pager",
    "INTERNET": "email",
    "X.400": "email",
    "TDD": "other",
    "TTY": "other",
}


def contact_point_from_xtn(rep: Repetition, default_use: str) -> dict[str, Any] | None:
    """XTN → ContactPoint. Value: XTN.4 for e-mail, else XTN.12, XTN.1, or XTN.5–8 composed.

    ``default_use`` comes from the field (PID-13 home, PID-14 work) when XTN.2 is not in the IG map;
    equipment ``CP`` (cell phone) gives use ``mobile`` as in the IG.
    """
    use_code = value(rep, 2).upper()
    equipment = value(rep, 3).upper()
    system = TELECOM_SYSTEM.get(equipment) or ("email" if use_code == "NET" else "phone")
    if system == "email":
        number = value(rep, 4) or value(rep, 1)
    else:
        composed = " ".join(p for p in (value(rep, 5), value(rep, 6), value(rep, 7)) if p)
        if composed and value(rep, 8):
            composed += f" ext. {value(rep, 8)}"
        number = value(rep, 12) or value(rep, 1) or composed
    if not number:
        return None
    use = "mobile" if equipment == "CP" else TELECOM_USE.get(use_code, default_use)
    return {"system": system, "value": number, "use": use}


def coding_system_uri(name: str, options: MappingOptions) -> str | None:
    """Table 0396 name → FHIR code system URI (``HL7nnnn`` → v2-nnnn; unknown → a local URI)."""
    if not name:
        return None
    upper = name.upper()
    if upper in CODING_SYSTEMS:
        return CODING_SYSTEMS[upper]
    match = re.fullmatch(r"HL7(\d{4})", upper)
    if match:
        return f"http://terminology.hl7.org/CodeSystem/v2-{match.group(1)}"
    return f"{options.local_system_base}coding-system:{quote(name, safe='')}"


def codeable_concept_from_cwe(rep: Repetition, options: MappingOptions) -> dict[str, Any] | None:
    """CE/CWE → CodeableConcept: triplets 1–3 and 4–6 as codings, CWE.9 (or the first text) as text."""
    codings = []
    for first in (1, 4):
        code, display, system = value(rep, first), value(rep, first + 1), value(rep, first + 2)
        if not code:
            continue
        coding: dict[str, Any] = {}
        uri = coding_system_uri(system, options)
        if uri:
            coding["system"] = uri
        coding["code"] = code
        if display:
            coding["display"] = display
        codings.append(coding)
    text = value(rep, 9) or value(rep, 2)
    if not codings and not text:
        return None
    concept: dict[str, Any] = {}
    if codings:
        concept["coding"] = codings
    if text:
        concept["text"] = text
    return concept


def reference_from_xcn(rep: Repetition, options: MappingOptions) -> dict[str, Any] | None:
    """XCN → logical Reference (identifier + display).

    The IG creates a Practitioner resource; DACS has no practitioner registry yet, so the person is kept
    as ``Reference.identifier`` (XCN.1, system from XCN.9) with a display name — no resource is created.
    """
    ident = value(rep, 1)
    parts = [value(rep, 6), value(rep, 3), value(rep, 4), value(rep, 2, 1), value(rep, 5), value(rep, 7)]
    display = " ".join(p for p in parts if p)
    if not ident and not display:
        return None
    ref: dict[str, Any] = {}
    if ident:
        identifier: dict[str, Any] = {"value": ident}
        system = hd_system_from_subcomponents(rep, 9, options)
        if system:
            identifier["system"] = system
        ref["identifier"] = identifier
    if display:
        ref["display"] = display
    return ref


_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,4}))?(?P<tz>[+-]\d{4})?$"
)


def _partial_date(g: dict[str, str | None]) -> str | None:
    """YYYY, YYYY-MM or YYYY-MM-DD from a DTM match, or None when it is not a calendar date."""
    year = int(g["y"] or 0)
    if year == 0:
        return None
    try:
        if g["mo"] is None:
            return f"{year:04d}"
        if g["d"] is None:
            return dt.date(year, int(g["mo"]), 1).isoformat()[:7]
        return dt.date(year, int(g["mo"]), int(g["d"])).isoformat()
    except ValueError:
        return None


def fhir_date(raw: str) -> str | None:
    """HL7 DT/DTM → FHIR date (the time part dropped), or None when not a valid date."""
    match = _DTM.match(raw.strip())
    return _partial_date(match.groupdict()) if match else None


def fhir_datetime(raw: str, options: MappingOptions) -> str | None:
    """HL7 DTM/TS → FHIR dateTime at the precision sent, or None when it is not a valid date/time.

    A time without an offset is taken in ``options.timezone``; seconds are added when only minutes or
    hours were sent (FHIR requires them). TS's old second component (precision) is ignored.
    """
    match = _DTM.match(raw.strip())
    if not match:
        return None
    g = match.groupdict()
    day = _partial_date(g)
    if day is None or g["h"] is None:
        return day
    try:
        stamp = dt.datetime.fromisoformat(day).replace(
            hour=int(g["h"]), minute=int(g["mi"] or 0), second=int(g["s"] or 0),
            microsecond=int((g["f"] or "0").ljust(6, "0")),
        )
    except ValueError:
        return None
    if g["tz"]:
        sign = 1 if g["tz"][0] == "+" else -1
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][3:5])
        if hours > 14 or minutes > 59:
            return None
        tz: dt.tzinfo = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    else:
        tz = options.timezone
    spec = "milliseconds" if g["f"] else "seconds"
    return stamp.replace(tzinfo=tz).isoformat(timespec=spec)


def first_value(segment: Segment | None, n: int, component: int = 1) -> str:
    """Stripped leaf of the first repetition of field ``n`` ('' if the segment is absent or null)."""
    if segment is None:
        return ""
    return value(segment.first(n), component)


def search_token(system: str | None, value_: str) -> str:
    """``system|value`` for a FHIR token search, special characters escaped, %-encoded for a URL."""

    def esc(text: str) -> str:
        for ch in ("\\", "|", ",", "$"):
            text = text.replace(ch, "\\" + ch)
        return quote(text, safe=":/.-_~@!*'()")

    return f"{esc(system)}|{esc(value_)}" if system else esc(value_)
