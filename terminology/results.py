"""The provenance every calculation carries, so a result can be stored as Observation + Provenance.

A result records *how* it was obtained (method code), *from what* (inputs with units), *with which
numbers* (coefficients and the data set and publication each came from) and *what was assumed*
(e.g. "age unknown: adult coefficient used"). ``provenance_entities`` flattens that for the lead's
Provenance resource; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from terminology.codes import dacs_system
from terminology.reference import Source


@dataclass(frozen=True)
class Input:
    """One input of a calculation, in the unit it was used in."""

    name: str
    value: float | str | None
    unit: str | None = None


@dataclass(frozen=True)
class Coefficient:
    """A published number used by a calculation, with the set and source it came from."""

    name: str
    value: float
    unit: str
    set_id: str
    source: Source


@dataclass(frozen=True)
class Calculation:
    """Fields common to every calculation result (method, inputs, coefficients, assumptions)."""

    method: str
    inputs: tuple[Input, ...]
    coefficients: tuple[Coefficient, ...]
    assumptions: tuple[str, ...]

    @property
    def method_coding(self) -> dict[str, str]:
        """FHIR Coding for ``Observation.method`` (DACS calculation-method code system)."""
        return {"system": dacs_system("calculation-method"), "code": self.method}

    @property
    def sources(self) -> tuple[Source, ...]:
        seen: dict[tuple[str, str | None], Source] = {}
        for c in self.coefficients:
            seen.setdefault((c.source.citation, c.source.table), c.source)
        return tuple(seen.values())

    def provenance_entities(self) -> list[dict[str, Any]]:
        """Plain dicts describing each coefficient's source, for a Provenance ``entity`` or an extension."""
        return [
            {
                "name": c.name,
                "value": c.value,
                "unit": c.unit,
                "set": c.set_id,
                "citation": c.source.citation,
                "table": c.source.table,
                "edition": c.source.edition,
                "evidence": c.source.evidence,
                "origin": c.source.origin,
            }
            for c in self.coefficients
        ]
