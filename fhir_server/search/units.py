"""Unit-aware quantity search: the canonical UCUM form of a quantity.

FHIR quantity search may match ``5.4|http://unitsofmeasure.org|g`` against a stored ``5400 mg``
(http://hl7.org/fhir/R4/search.html#quantity). The conversion factors belong to ``terminology``.
"""

from __future__ import annotations


def canonical_quantity(value: float, ucum_code: str) -> tuple[float, str] | None:
    """``(value, code)`` in the canonical unit of ``ucum_code``'s dimension, or None if unknown."""
    return None
