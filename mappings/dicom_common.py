"""DICOM → FHIR helpers shared by every DICOM mapping (dose reports, image headers, MPPS).

Pure functions: DICOM date/time strings to FHIR ``dateTime``, UIDs to ``urn:oid:`` identifiers,
person names to ``HumanName``, issuers of identifiers to a FHIR ``Identifier.system``, and the escaping
a conditional-request URL needs. Nothing here reads files or talks to a server.

Identifier systems chosen for DACS (documented once here, used by every mapping):

* DICOM UIDs (study, series, SOP instance, irradiation event, device observer): system
  ``urn:dicom:uid``, value ``urn:oid:<uid>`` — the convention of FHIR ImagingStudy and of the HL7
  radiation dose summary IG.
* An identifier's issuer (DICOM *Issuer of Patient ID* / *Issuer of Accession Number*, which are the
  same triple as the HL7 v2 HD data type: namespace id, universal id, universal id type), see
  :func:`issuer_system`, which delegates to the HL7 v2 mapping's rule so that a patient from a RIS
  message and from a DICOM object land on the same FHIR Patient.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mappings.hl7v2.datatypes import MappingOptions as _Hl7MappingOptions
from mappings.hl7v2.datatypes import authority_system

_HL7_OPTIONS = _Hl7MappingOptions()

DICOM_UID_SYSTEM = "urn:dicom:uid"
"""Identifier.system for every DICOM UID (value ``urn:oid:<uid>``)."""

LOCAL_ISSUER_SYSTEM = "urn:dacs:issuer:local"
"""System for identifiers that carry no issuer at all: the site's own local numbering (MRN, accession)."""

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(uid: str) -> bool:
    """True when ``uid`` is a syntactically valid DICOM UID (PS3.5 §9: digits and dots, ≤ 64 chars)."""
    return 0 < len(uid) <= 64 and _UID_RE.match(uid) is not None


def uid_to_urn(uid: str) -> str:
    """``urn:oid:<uid>``: how FHIR writes a DICOM UID in ``Identifier.value`` and ``Coding.code``."""
    return f"urn:oid:{uid}"


def issuer_system(
    namespace: str | None = None,
    universal_id: str | None = None,
    universal_id_type: str | None = None,
    *,
    default: str = LOCAL_ISSUER_SYSTEM,
) -> str:
    """The ``Identifier.system`` of an identifier issued by the given authority.

    Same rule as the HL7 v2 mapping's assigning authorities (``mappings.hl7v2.datatypes.authority_system``,
    called here so the two can never drift): a universal id wins (ISO → ``urn:oid:<oid>``, URI → itself,
    UUID → ``urn:uuid:<uuid>``), else the namespace → ``urn:dacs:hl7v2:authority:<namespace, %-encoded>``.
    With no issuer at all the identifier is the site's local numbering: ``default``, which a site sets to
    the system its RIS identifiers get (the HL7 mapping uses the sending facility for those).
    """
    system = authority_system((namespace or "").strip(), (universal_id or "").strip(),
                              (universal_id_type or "").strip(), _HL7_OPTIONS)
    return system or default


def escape_search_value(value: str) -> str:
    """Escape a token for a FHIR search URL: FHIR's backslash escapes, then percent-encoding.

    FHIR search (R4 §3.1.1.4.7 "Escaping search parameters") escapes ``\\``, ``|``, ``,`` and ``$`` with a
    backslash; the URL then percent-encodes everything outside the unreserved set so that values such as
    ``LO_Tm85+So=`` survive a query string (``+`` would otherwise read as a space).
    """
    escaped = value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
    return quote(escaped, safe=":/.-_~")


def identifier_query(system: str, value: str) -> str:
    """``identifier=<system>|<value>`` for a conditional create/update URL, both parts escaped."""
    return f"identifier={escape_search_value(system)}|{escape_search_value(value)}"


# --- dates and times -------------------------------------------------------------------------------

_DA_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?$")
_TM_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")
_DT_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$")


@lru_cache(maxsize=64)
def _zone(name: str) -> timezone | ZoneInfo:
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _offset(text: str) -> timezone:
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))


def _fhir_instant_text(moment: datetime, fraction: str | None) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + fraction
    offset = moment.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return text + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def dicom_datetime_to_fhir(
    dt: str | None = None,
    *,
    date: str | None = None,
    time: str | None = None,
    utc_offset: str | None = None,
    zone: str = "UTC",
) -> str | None:
    """A FHIR ``dateTime`` from a DICOM DT, or from a DA and an optional TM.

    FHIR requires a time zone whenever a time is given, while DICOM times are local unless they carry
    an offset. The offset is taken, in order, from the DT value itself, ``utc_offset`` (the dataset's
    *Timezone Offset From UTC*, (0008,0201)), and finally the site's IANA ``zone`` (which handles
    daylight saving). Returns ``None`` when the input is empty or not a valid DICOM date/time; the
    caller decides whether that deserves a warning.
    """
    text = (dt or "").strip()
    if text:
        match = _DT_RE.match(text)
        if match is None:
            return None
        year, month, day, hour, minute, second, fraction, offset = match.groups()
    else:
        date_text = (date or "").strip()
        if not date_text:
            return None
        dmatch = _DA_RE.match(date_text)
        if dmatch is None:
            return None
        year, month, day = dmatch.groups()
        hour = minute = second = fraction = offset = None
        time_text = (time or "").strip().replace(":", "")
        if time_text and month and day:
            tmatch = _TM_RE.match(time_text)
            if tmatch is None:
                return None
            hour, minute, second, fraction = tmatch.groups()
    try:
        if hour is None or not (month and day):
            # date only (or partial): FHIR allows a date without a zone
            parts = [year] + [p for p in (month, day) if p]
            datetime(int(year), int(month or 1), int(day or 1))  # validates
            return "-".join(parts)
        naive = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    if offset:
        tz: timezone | ZoneInfo = _offset(offset)
    elif utc_offset and re.match(r"^[+-]\d{4}$", utc_offset.strip()):
        tz = _offset(utc_offset.strip())
    else:
        tz = _zone(zone)
    return _fhir_instant_text(naive.replace(tzinfo=tz), fraction)


def dicom_date_to_fhir(da: str | None) -> str | None:
    """A FHIR ``date`` (YYYY-MM-DD) from a DICOM DA, or ``None`` when empty or invalid."""
    text = (da or "").strip()
    match = _DA_RE.match(text)
    if not text or match is None or not all(match.groups()):
        return None
    try:
        datetime(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}"


# --- people ----------------------------------------------------------------------------------------

def person_name_to_fhir(name: str | None) -> dict | None:
    """A FHIR ``HumanName`` from a DICOM PN value (``family^given^middle^prefix^suffix``).

    Only the first (alphabetic) component group is used for the structured parts; ideographic and
    phonetic groups (after ``=``) are kept in ``text`` so nothing the modality sent is lost.
    """
    raw = (name or "").strip()
    if not raw:
        return None
    groups = raw.split("=")
    parts = [p.strip() for p in groups[0].split("^")] + [""] * 5
    family, given, middle, prefix, suffix = parts[:5]
    human: dict = {}
    if family:
        human["family"] = family
    givens = [g for g in (given, middle) if g]
    if givens:
        human["given"] = givens
    if prefix:
        human["prefix"] = [prefix]
    if suffix:
        human["suffix"] = [suffix]
    readable = " ".join(p for p in (prefix, given, middle, family, suffix) if p)
    extra = [g for g in groups[1:] if g.strip("^ ")]
    if extra:
        readable = " = ".join([readable, *(g.replace("^", " ").strip() for g in extra)]).strip(" =")
    if readable:
        human["text"] = readable
    return human or None


def administrative_gender(sex: str | None) -> str | None:
    """FHIR ``administrative-gender`` from DICOM Patient's Sex (M/F/O); ``None`` when unknown."""
    return {"M": "male", "F": "female", "O": "other"}.get((sex or "").strip().upper())
