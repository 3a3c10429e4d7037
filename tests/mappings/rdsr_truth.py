"""Ground truth for the RDSR tests, read from the files with a plain pydicom walk.

Deliberately independent of ``mappings.rdsr``: its own tree walk, its own unit table, matching concept
codes by value only (every code read here is a DCM code, where legacy variants do not exist).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

# Factors to the units the IG (and DACS) emit, written out here rather than imported from the mapping.
TO_MGY = {"Gy": 1000.0, "mGy": 1.0, "dGy": 100.0}
TO_MGY_CM2 = {"Gy.m2": 1e7, "Gym2": 1e7, "dGy.cm2": 100.0, "Gy.cm2": 1000.0, "mGy.cm2": 1.0}
TO_MGY_CM = {"mGy.cm": 1.0, "mGycm": 1.0}


@dataclass
class NumValue:
    code: str
    value: float | None
    unit: str | None
    path: tuple[str, ...]
    modifiers: dict[str, str] = field(default_factory=dict)


def _code(item: Dataset, keyword: str) -> str | None:
    seq = item.get(keyword)
    return str(seq[0].get("CodeValue") or "") if seq else None


def walk(items, path: tuple[str, ...] = ()) -> Iterator[tuple[Dataset, tuple[str, ...]]]:
    for item in items or ():
        name = _code(item, "ConceptNameCodeSequence") or ""
        yield item, (*path, name)
        yield from walk(item.get("ContentSequence"), (*path, name))


def num_values(ds: Dataset, code: str) -> list[NumValue]:
    """Every NUM item with concept ``code`` (value None when its measured value is empty)."""
    out = []
    for item, path in walk(ds.get("ContentSequence")):
        if path[-1] != code or item.get("ValueType") != "NUM":
            continue
        mvs = item.get("MeasuredValueSequence")
        if not mvs:
            out.append(NumValue(code, None, None, path))
            continue
        raw = mvs[0].get("NumericValue")
        try:
            value = float(raw) if raw is not None and not isinstance(raw, list | tuple) else None
        except (TypeError, ValueError):
            value = None
        unit_seq = mvs[0].get("MeasurementUnitsCodeSequence")
        unit = str(unit_seq[0].CodeValue) if unit_seq else None
        mods = {}
        for child in item.get("ContentSequence") or ():
            mods[_code(child, "ConceptNameCodeSequence") or ""] = _code(child, "ConceptCodeSequence") or ""
        out.append(NumValue(code, value, unit, path, mods))
    return out


def top_level_count(ds: Dataset, code: str) -> int:
    return sum(1 for item in ds.get("ContentSequence") or () if _code(item, "ConceptNameCodeSequence") == code)


def event_uid(container: Dataset) -> str | None:
    for child in container.get("ContentSequence") or ():
        if _code(child, "ConceptNameCodeSequence") in ("113769", "113503"):
            return str(child.get("UID") or child.get("TextValue") or "") or None
    return None


def events(ds: Dataset) -> list[Dataset]:
    return [item for item in ds.get("ContentSequence") or ()
            if _code(item, "ConceptNameCodeSequence") in ("113819", "113706", "113502")]


def converted(nv: NumValue, table: dict[str, float]) -> float | None:
    if nv.value is None or nv.unit is None:
        return None
    return nv.value * table[nv.unit]
