"""Patient age in years, as the age-banded coefficients and DRL populations need it.

Sources of age differ: FHIR ``Patient.birthDate`` (possibly only a year or year-month) and the exam
date, or the DICOM Patient's Age (0010,1010) string ``nnnD|W|M|Y``. Both become fractional years.
"""

from __future__ import annotations

import re
from datetime import date

from terminology.errors import TerminologyError

_DICOM_AGE = re.compile(r"^(\d{3})([DWMY])$")
_DAYS_PER_YEAR = 365.25  # the UCUM mean Julian year, as in terminology.ucum


def parse_dicom_age(value: str) -> float:
    """Years from a DICOM AS value (``"045Y"`` → 45.0, ``"006M"`` → 0.5, ``"010D"`` → 10/365.25).

    Raises ``TerminologyError`` for anything that is not the four-character AS form.
    """
    match = _DICOM_AGE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise TerminologyError(f"not a DICOM age string (nnnD/W/M/Y): {value!r}")
    n, unit = int(match.group(1)), match.group(2)
    return {"D": n / _DAYS_PER_YEAR, "W": n * 7 / _DAYS_PER_YEAR, "M": n / 12, "Y": float(n)}[unit]


def age_at(birth_date: str | date, on: str | date) -> float:
    """Age in years on ``on`` for a FHIR date (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``).

    A partial birth date is taken at the middle of its year or month, so that the error is at most
    half a year (or half a month) either way.
    """
    born = _as_date(birth_date, partial_middle=True)
    when = _as_date(on, partial_middle=False)
    if when < born:
        raise TerminologyError(f"exam date {when} is before the birth date {born}")
    return (when - born).days / _DAYS_PER_YEAR


def _as_date(value: str | date, *, partial_middle: bool) -> date:
    if isinstance(value, date):
        return value
    text = value.strip()[:10]
    try:
        if re.fullmatch(r"\d{4}", text):
            return date(int(text), 7, 2) if partial_middle else date(int(text), 1, 1)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            return date(int(text[:4]), int(text[5:]), 15 if partial_middle else 1)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise TerminologyError(f"not a FHIR date: {value!r}") from exc
