"""Quantities with UCUM units, and the unit conversions the dose mapping needs.

A :class:`DoseQuantity` is a finite number with a UCUM unit; it converts only along the factors in
``data/unit_conversions.csv``, so an unexpected unit fails loudly instead of producing a wrong number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from mappings.rdsr.codes import data_rows

UCUM_SYSTEM = "http://unitsofmeasure.org"


@lru_cache(maxsize=1)
def unit_aliases() -> dict[str, str]:
    """Non-UCUM unit strings seen from vendors → UCUM (``data/unit_aliases.csv``)."""
    return {row["sent"]: row["ucum"] for row in data_rows("unit_aliases.csv")}


@lru_cache(maxsize=1)
def _conversions() -> dict[tuple[str, str], float]:
    return {(row["from"], row["to"]): float(row["factor"]) for row in data_rows("unit_conversions.csv")}


@lru_cache(maxsize=1)
def concept_units() -> dict[tuple[str, str], tuple[str, str]]:
    """(code, scheme) → (template unit, FHIR unit); empty strings mean "keep as sent"."""
    return {(r["code"], r["scheme"]): (r["template_unit"], r["fhir_unit"]) for r in data_rows("concept_units.csv")}


class UnitConversionError(ValueError):
    """No known factor between two units."""


def conversion_factor(from_unit: str, to_unit: str) -> float:
    """Multiply a value in ``from_unit`` by this to express it in ``to_unit``."""
    if from_unit == to_unit:
        return 1.0
    factor = _conversions().get((from_unit, to_unit))
    if factor is None:
        raise UnitConversionError(f"no conversion from {from_unit!r} to {to_unit!r}")
    return factor


@dataclass(frozen=True, slots=True)
class DoseQuantity:
    """A measured value and its UCUM unit (validated: finite number, non-empty unit)."""

    value: float
    ucum: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, int | float) or isinstance(self.value, bool):
            raise TypeError(f"DoseQuantity value must be a number, got {type(self.value).__name__}")
        if not math.isfinite(self.value):
            raise ValueError(f"DoseQuantity value must be finite, got {self.value!r}")
        if not self.ucum or not isinstance(self.ucum, str):
            raise ValueError("DoseQuantity needs a UCUM unit")

    def to(self, ucum: str) -> DoseQuantity:
        """The same quantity in ``ucum`` (raises :class:`UnitConversionError` when not convertible)."""
        if ucum == self.ucum:
            return self
        return DoseQuantity(self.value * conversion_factor(self.ucum, ucum), ucum)

    def __add__(self, other: DoseQuantity) -> DoseQuantity:
        return DoseQuantity(self.value + other.to(self.ucum).value, self.ucum)

    def fhir(self) -> dict:
        """A FHIR Quantity with the UCUM system and code (as the IG recommends, §1.6)."""
        return {"value": _fhir_number(self.value), "unit": self.ucum, "system": UCUM_SYSTEM, "code": self.ucum}


def _fhir_number(value: float) -> float | int:
    """Round away binary noise from unit conversion (1e-7 × 1e7) without losing real precision."""
    if value == 0:
        return 0
    rounded = float(f"{value:.12g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < 1e15 else rounded
