"""Unit-aware quantity search: the canonical UCUM form of a quantity.

FHIR quantity search may match ``5.4|http://unitsofmeasure.org|g`` against a stored ``5400 mg``
(http://hl7.org/fhir/R4/search.html#quantity). Quantities of the kinds DACS knows (doses, DAP, DLP,
activity, time, …) are indexed a second time in the canonical unit of their kind, using the UCUM
conversions of :mod:`terminology.ucum`; a search in a convertible unit is converted the same way.
"""

from __future__ import annotations

from functools import lru_cache

from terminology.errors import UnitError
from terminology.ucum import canonical_unit, convert, kind_of


@lru_cache(maxsize=512)
def _canonical_code(ucum_code: str) -> str | None:
    try:
        return canonical_unit(kind_of(ucum_code))
    except UnitError:
        return None


def canonical_quantity(value: float, ucum_code: str) -> tuple[float, str] | None:
    """``(value, code)`` in the canonical unit of ``ucum_code``'s kind, or None if not convertible."""
    target = _canonical_code(ucum_code)
    if target is None:
        return None
    return convert(value, ucum_code, target), target
