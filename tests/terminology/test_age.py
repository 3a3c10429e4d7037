"""Patient age from DICOM age strings and FHIR (partial) birth dates."""

from __future__ import annotations

from datetime import date

import pytest

from terminology.age import age_at, parse_dicom_age
from terminology.errors import TerminologyError


@pytest.mark.parametrize(
    ("value", "years"), [("045Y", 45.0), ("006M", 0.5), ("052W", 52 * 7 / 365.25), ("010D", 10 / 365.25), ("000Y", 0.0)]
)
def test_dicom_age(value: str, years: float) -> None:
    assert parse_dicom_age(value) == pytest.approx(years)


@pytest.mark.parametrize("value", ["45Y", "045y", "045", "", "0045Y", "045A"])
def test_bad_dicom_age(value: str) -> None:
    with pytest.raises(TerminologyError):
        parse_dicom_age(value)


def test_age_at_full_and_partial_dates() -> None:
    assert age_at("1980-06-15", "2026-06-15") == pytest.approx(46, abs=0.01)
    assert age_at("1980-06-15", date(2026, 6, 14)) < 46
    assert age_at("1980", "2026-07-02") == pytest.approx(46, abs=0.01)
    assert age_at("2025-11", "2026-11-15") == pytest.approx(1, abs=0.01)
    with pytest.raises(TerminologyError, match="before the birth date"):
        age_at("2026-01-01", "2025-12-31")
    with pytest.raises(TerminologyError):
        age_at("1980-13-01", "2026-01-01")
