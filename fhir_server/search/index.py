"""Extraction of search-index entries from a resource: the write side of search.

Every backend stores the same :class:`IndexEntry` rows (SQLite in a table per type, MongoDB in an
array inside the document), so that both answer every search the same way. One entry holds one
searchable value of one parameter:

=========  ===============  ==============  =====================  ===================
type       ``s``            ``k``           ``t``                  ``lo`` / ``hi``
=========  ===============  ==============  =====================  ===================
token      system           code / value    normalised display     —
string     —                normalised      exact text             —
date       —                —               —                      ms range
number     —                —               —                      value
quantity   system           code or unit    —                      value
reference  target type      ``Type/id``     target id              —
uri        —                uri             —                      —
composite  1st: system      1st: code       2nd: code / text       2nd: value range
=========  ===============  ==============  =====================  ===================

Quantities with a UCUM unit other than the canonical one of their kind get a second entry under
``<param>$canonical`` in the canonical unit,
and references with an identifier one under ``<param>:identifier``, so that unit-aware and
``:identifier`` searches are plain index look-ups.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from fhir_server.search.fhirpath import top_level_names
from fhir_server.search.registry import SearchParam, params_for
from fhir_server.search.units import canonical_quantity
from fhir_server.search.values import BadValue, date_range, normalise_string, period_range

UCUM = "http://unitsofmeasure.org"


class IndexEntry(NamedTuple):
    """One searchable value; see the module docstring for what each column holds per type."""

    p: str
    s: str | None = None
    k: str | None = None
    t: str | None = None
    lo: float | int | None = None
    hi: float | int | None = None


def _tokens(p: str, value: Any) -> Iterator[IndexEntry]:
    if isinstance(value, bool):
        yield IndexEntry(p, k="true" if value else "false")
    elif isinstance(value, str | int | float):
        yield IndexEntry(p, k=str(value))
    elif isinstance(value, dict):
        if "coding" in value or ("text" in value and "value" not in value and "code" not in value):
            for coding in value.get("coding", []):
                yield from _tokens(p, coding)
            if value.get("text"):
                yield IndexEntry(p, t=normalise_string(value["text"]))
        elif "code" in value or ("system" in value and "value" not in value):
            display = value.get("display")
            yield IndexEntry(p, s=value.get("system"), k=value.get("code"),
                             t=normalise_string(display) if display else None)
        elif "value" in value:  # Identifier, ContactPoint
            type_text = (value.get("type") or {}).get("text") if isinstance(value.get("type"), dict) else None
            yield IndexEntry(p, s=value.get("system"), k=str(value["value"]),
                             t=normalise_string(type_text) if type_text else None)


_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _strings(p: str, value: Any) -> Iterator[IndexEntry]:
    if isinstance(value, str):
        yield IndexEntry(p, k=normalise_string(value), t=value)
    elif isinstance(value, dict):
        for part in _NAME_PARTS + _ADDRESS_PARTS:
            found = value.get(part)
            for text in found if isinstance(found, list) else [found]:
                if isinstance(text, str):
                    yield IndexEntry(p, k=normalise_string(text), t=text)


def _dates(p: str, value: Any, hint: str | None) -> Iterator[IndexEntry]:
    try:
        if isinstance(value, str):
            lo, hi = date_range(value)
            yield IndexEntry(p, lo=lo, hi=hi)
        elif isinstance(value, dict):
            if "start" in value or "end" in value:
                rng = period_range(value)
                if rng:
                    yield IndexEntry(p, lo=rng[0], hi=rng[1])
            for event in value.get("event", []):  # Timing
                lo, hi = date_range(event)
                yield IndexEntry(p, lo=lo, hi=hi)
    except BadValue:
        return  # validation rejects bad dates before indexing; nothing searchable here


def _quantities(p: str, value: Any) -> Iterator[IndexEntry]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        yield IndexEntry(p, lo=value, hi=value)
        return
    if not isinstance(value, dict) or not isinstance(value.get("value"), int | float):
        return
    number = value["value"]
    system, code = value.get("system"), value.get("code") or value.get("unit")
    yield IndexEntry(p, s=system, k=code, lo=number, hi=number)
    if system == UCUM and code:
        canonical = canonical_quantity(number, code)
        if canonical is not None and canonical[1] != code:  # already canonical: the entry above serves
            yield IndexEntry(p + "$canonical", s=UCUM, k=canonical[1], lo=canonical[0], hi=canonical[0])


def _references(p: str, value: Any) -> Iterator[IndexEntry]:
    if isinstance(value, str):  # canonical or uri
        yield IndexEntry(p, k=value)
        return
    if not isinstance(value, dict):
        return
    ref = value.get("reference")
    if isinstance(ref, str) and not ref.startswith("#"):
        ref = ref.split("/_history/")[0]
        parts = ref.rsplit("/", 2)
        if len(parts) >= 2 and not ref.startswith("urn:"):
            yield IndexEntry(p, s=parts[-2], k=ref, t=parts[-1])
        else:
            yield IndexEntry(p, k=ref)
    identifier = value.get("identifier")
    if isinstance(identifier, dict) and identifier.get("value"):
        yield IndexEntry(p + ":identifier", s=identifier.get("system"), k=str(identifier["value"]))


def _simple(param_type: str, p: str, value: Any, hint: str | None) -> Iterator[IndexEntry]:
    if param_type == "token":
        yield from _tokens(p, value)
    elif param_type == "string":
        yield from _strings(p, value)
    elif param_type == "date":
        yield from _dates(p, value, hint)
    elif param_type in ("number", "quantity"):
        yield from _quantities(p, value)
    elif param_type == "reference":
        yield from _references(p, value)
    elif param_type == "uri" and isinstance(value, str):
        yield IndexEntry(p, k=value)


def _composite(param: SearchParam, node: Any) -> Iterator[IndexEntry]:
    first, second = param.components[0], param.components[1]
    firsts = [e for v, h in first.evaluate(node) for e in _simple(first.type, param.code, v, h)]
    seconds = [e for v, h in second.evaluate(node) for e in _simple(second.type, param.code, v, h)]
    for a in firsts:
        if a.k is None:
            continue
        for b in seconds:
            if b.p != param.code:
                continue
            yield IndexEntry(param.code, s=a.s, k=a.k, t=b.k if second.type in ("token", "string") else None,
                             lo=b.lo, hi=b.hi)


def index_entries(resource: dict[str, Any]) -> list[IndexEntry]:
    """All search-index entries of ``resource`` for the parameters of its type."""
    out: list[IndexEntry] = []
    present = top_level_names(resource)
    for param in params_for(resource["resourceType"]).values():
        if param.type == "special" or param.union_of:
            continue
        roots = param.evaluate.roots  # type: ignore[attr-defined]
        if roots is not None and roots.isdisjoint(present):
            continue
        nodes = param.evaluate(resource)
        if param.type == "composite":
            if len(param.components) == 2:
                for node, _ in nodes:
                    out.extend(_composite(param, node))
            continue
        for value, hint in nodes:
            out.extend(_simple(param.type, param.code, value, hint))
    return out
