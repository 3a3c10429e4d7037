"""Conversions of FHIR primitive values into comparable search ranges and normalised strings.

Dates become closed ranges of integer milliseconds since the epoch (UTC), so that a value's implied
precision ("2024" is the whole year) is kept, as FHIR search requires
(http://hl7.org/fhir/R4/search.html#date). Date-only values and the search values without a time
zone are read as UTC. Numbers carry the precision of their string form ("100" means [99.5, 100.5)).
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache

MIN_MS = -(2**62)
MAX_MS = 2**62

_RE_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class BadValue(ValueError):
    """A search or stored value that cannot be read as its declared type."""


def _epoch_ms(dt: datetime) -> int:
    return calendar.timegm(dt.utctimetuple()) * 1000 + dt.microsecond // 1000


def date_range(text: str) -> tuple[int, int]:
    """The closed millisecond range ``[lo, hi]`` covered by a FHIR date, dateTime or instant."""
    m = _RE_DATE.match(text.strip())
    if not m:
        raise BadValue(f"not a FHIR date/dateTime: {text!r}")
    year, month, day, hour, minute, second, frac, tz = m.groups()
    tzinfo = UTC
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        tzinfo = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    try:
        y = int(year)
        if month is None:
            start, end = datetime(y, 1, 1, tzinfo=tzinfo), datetime(y + 1, 1, 1, tzinfo=tzinfo)
        elif day is None:
            mo = int(month)
            start = datetime(y, mo, 1, tzinfo=tzinfo)
            end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=tzinfo)
        elif hour is None:
            start = datetime(y, int(month), int(day), tzinfo=tzinfo)
            end = start + timedelta(days=1)
        elif minute is None:
            start = datetime(y, int(month), int(day), int(hour), tzinfo=tzinfo)
            end = start + timedelta(hours=1)
        elif second is None:
            start = datetime(y, int(month), int(day), int(hour), int(minute), tzinfo=tzinfo)
            end = start + timedelta(minutes=1)
        else:
            micro = int((frac or "0")[:6].ljust(6, "0"))
            start = datetime(y, int(month), int(day), int(hour), int(minute), int(second), micro,
                             tzinfo=tzinfo)
            end = start + (timedelta(milliseconds=1) if frac else timedelta(seconds=1))
    except ValueError as exc:
        raise BadValue(f"not a valid date: {text!r} ({exc})") from None
    return _epoch_ms(start), _epoch_ms(end) - 1


def period_range(period: dict) -> tuple[int, int] | None:
    """The range of a Period; an open end extends to infinity (FHIR R4 Period semantics)."""
    start, end = period.get("start"), period.get("end")
    if not start and not end:
        return None
    lo = date_range(start)[0] if start else MIN_MS
    hi = date_range(end)[1] if end else MAX_MS
    return lo, hi


def number_range(text: str) -> tuple[float, float, float]:
    """``(value, lo, hi)`` for a search number: the interval its significant digits imply."""
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise BadValue(f"not a number: {text!r}") from None
    if not d.is_finite():
        raise BadValue(f"not a finite number: {text!r}")
    exponent = d.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
    return float(d), float(d - half), float(d + half)


@lru_cache(maxsize=65536)
def normalise_string(text: str) -> str:
    """Case- and accent-insensitive form used for the default string match (FHIR R4 search §string)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().strip()
