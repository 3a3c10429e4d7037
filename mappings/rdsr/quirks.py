"""Normalisation of a dose report's content tree before any template is parsed.

This is the one place where vendor deviations are repaired (rdsr-to-fhir.md §4), each repair leaving
a warning so nothing is silently swallowed:

* codes: legacy SNOMED-RT (SRT) codes become their SNOMED CT equivalent (``data/legacy_codes.csv``);
* units: non-UCUM strings (``mGycm``, ``Gym2``, ``uAs`` …, ``data/unit_aliases.csv``) and the GE
  coding scheme ``UCM`` become UCUM. A unit that is valid UCUM but not the template's (Canon's
  ``mGy`` for a Gy field, ``dGy.cm2`` for Gy.m2) is kept: values are converted using the unit actually
  sent, and the template parsers warn;
* numbers: DS strings are parsed defensively — ``/`` used as a value separator (Toshiba), a decimal
  comma, padding — into ``ContentItem.numbers``; a value that cannot be read becomes
  ``ContentItem.number_error`` and only fails the mapping if a parser needs that value;
* text: UTF-8 bytes in a file that declares ISO_IR 100 (or no character set) decode as Latin-1
  "mojibake" (``testÃ¦Ã¸Ã¥``); they are re-read as UTF-8.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from mappings.rdsr.codes import canonical_code
from mappings.rdsr.sr_tree import Code, ContentItem
from mappings.rdsr.units import unit_aliases

_DS_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True, slots=True)
class NormalisedTree:
    """The repaired content items and the warnings the repairs left (deduplicated, with counts)."""

    items: tuple[ContentItem, ...]
    warnings: tuple[str, ...]


def normalise_unit(unit: Code) -> tuple[Code, str | None]:
    """The UCUM form of a measurement unit code, and a warning when it had to be repaired."""
    value, scheme = unit.value, unit.scheme
    notes = []
    if scheme == "UCM":
        scheme = "UCUM"
        notes.append("coding scheme 'UCM' read as 'UCUM'")
    alias = unit_aliases().get(value)
    if alias is not None:
        notes.append(f"unit {value!r} is not UCUM, read as {alias!r}")
        value = alias
    if not notes:
        return unit, None
    return Code(value, scheme, unit.meaning), "; ".join(notes)


def parse_numeric(text: str | None) -> tuple[tuple[float, ...], str | None, str | None]:
    """(numbers, warning, error) for a NumericValue string.

    DICOM DS is ``[+-]digits[.digits][E[+-]digits]``, several values separated by ``\\``. Repairs: ``/``
    as a separator and a decimal comma. ``NaN``/``Inf`` and anything else unreadable is an error, as
    is an empty value.
    """
    raw = (text or "").strip()
    if not raw:
        return (), None, "empty numeric value"
    warning = None
    parts = [p.strip() for p in raw.split("\\")]
    if len(parts) == 1 and "/" in raw:
        parts = [p.strip() for p in raw.split("/")]
        warning = f"numeric value {raw!r} uses '/' between values; read as {len(parts)} values"
    elif len(parts) == 1 and raw.count(",") == 1 and "." not in raw:
        parts = [raw.replace(",", ".")]
        warning = f"numeric value {raw!r} uses a decimal comma"
    numbers = []
    for part in parts:
        if not _DS_NUMBER.match(part):
            return (), None, f"numeric value {raw!r} is not a number"
        number = float(part)
        if not math.isfinite(number):
            return (), None, f"numeric value {raw!r} is not finite"
        numbers.append(number)
    return tuple(numbers), warning, None


def repair_text(text: str) -> tuple[str, bool]:
    """UTF-8 bytes that were decoded as Latin-1 → the intended text; (text, repaired?)."""
    if text.isascii():
        return text, False
    try:
        repaired = text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text, False
    return (repaired, True) if repaired != text else (text, False)


class _Normaliser:
    def __init__(self, repair_charset: bool):
        self.repair_charset = repair_charset
        self.notes: Counter[str] = Counter()
        self.legacy: dict[str, str] = {}

    def item(self, item: ContentItem) -> ContentItem:
        concept = canonical_code(item.concept) if item.concept is not None else None
        code = canonical_code(item.code) if item.code is not None else None
        for before, after in ((item.concept, concept), (item.code, code)):
            if before is not None and after is not None and after.key != before.key:
                self.legacy[f"{before.scheme} {before.value}"] = f"{after.scheme} {after.value}"
        text = item.text
        if text and self.repair_charset and item.value_type in ("TEXT", "PNAME"):
            text, repaired = repair_text(text)
            if repaired:
                self.notes["text in UTF-8 although the character set declared is not; re-read as UTF-8"] += 1
        unit = item.unit
        numbers: tuple[float, ...] = ()
        error = None
        if item.value_type == "NUM":
            name = _name(concept)
            if unit is not None:
                unit, note = normalise_unit(unit)
                if note:
                    self.notes[note] += 1
            if item.has_measured_value and (item.number_text or "").strip():
                numbers, warning, error = parse_numeric(item.number_text)
                if warning:
                    self.notes[f"{name}: {warning}"] += 1
                if error:
                    error = f"{name}: {error}"
            else:  # empty MeasuredValueSequence or empty NumericValue (OpenREM #673, #955): no value
                self.notes[f"{name} has an empty measured value"] += 1
        children = tuple(self.item(c) for c in item.children) if item.children else ()
        return ContentItem(item.value_type, item.relationship, concept, text, code, item.number_text, unit,
                           item.has_measured_value, children, numbers, error)


def _name(code: Code | None) -> str:
    if code is None:
        return "numeric item"
    return f"{code.value} {code.meaning}".strip()


def normalise_content_tree(items: tuple[ContentItem, ...], *, repair_charset: bool = True) -> NormalisedTree:
    """Apply every repair above to ``items``; ``repair_charset`` is False when the dataset declares UTF-8
    or a multi-byte character set (where re-reading Latin-1 as UTF-8 would be wrong)."""
    normaliser = _Normaliser(repair_charset)
    repaired = tuple(normaliser.item(i) for i in items)
    notes = [f"{note} (×{n})" if n > 1 else note for note, n in normaliser.notes.items()]
    if normaliser.legacy:
        pairs = ", ".join(f"{a} → {b}" for a, b in sorted(normaliser.legacy.items()))
        notes.insert(0, f"legacy codes read as their current equivalents: {pairs}")
    warnings = tuple(notes)
    return NormalisedTree(repaired, warnings)
