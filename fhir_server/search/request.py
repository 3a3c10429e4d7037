"""Parse a FHIR search query string into a typed :class:`SearchRequest` (no I/O).

Follows http://hl7.org/fhir/R4/search.html: repeated parameters are AND, comma-separated values are
OR, ``\\`` escapes ``,``, ``$`` and ``|``; chains (``subject:Patient.name``), reverse chains
(``_has:Observation:patient:code``), modifiers, and the result parameters (``_sort``, ``_count``,
``_include`` …). Unknown parameters are an error unless the client asked for lenient handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_server.errors import FhirError, NotSupported
from fhir_server.search.filters import SortKey
from fhir_server.search.registry import SearchParam, is_served, params_for

# Result parameters (search.html §3.2.1.7) and transport parameters handled elsewhere.
RESULT_PARAMS = {"_count", "_offset", "_sort", "_total", "_summary", "_elements", "_include",
                 "_revinclude", "_include:iterate", "_revinclude:iterate", "_format", "_pretty",
                 "_totalMethod", "_include:recurse", "_revinclude:recurse"}

MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"not", "text", "missing"},
    "reference": {"missing", "identifier"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"missing", "below", "above"},
    "composite": {"missing"},
}
SUMMARY_VALUES = {"true", "false", "text", "data", "count"}


@dataclass(frozen=True)
class ParamClause:
    """``param[:modifier]=v1,v2`` — the values are OR-ed."""

    param: SearchParam
    modifier: str | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class ChainClause:
    """``param[:Type].<inner>``: resources whose ``param`` references a ``target`` matching ``inner``."""

    param: SearchParam
    targets: tuple[str, ...]
    inner: Clause


@dataclass(frozen=True)
class HasClause:
    """``_has:Type:ref:<inner>``: resources referenced through ``ref`` by a ``source_type`` matching ``inner``."""

    source_type: str
    ref: SearchParam
    inner: Clause
    target_type: str


Clause = ParamClause | ChainClause | HasClause


@dataclass(frozen=True)
class Include:
    """``_include`` / ``_revinclude`` of ``source_type:param[:target_type]`` (``param='*'``: all refs)."""

    source_type: str
    param: str
    target_type: str | None
    iterate: bool


@dataclass(frozen=True)
class SearchRequest:
    """A parsed search on ``resource_type``."""

    resource_type: str
    clauses: tuple[Clause, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 20
    offset: int = 0
    total: str = "accurate"
    summary: str | None = None
    elements: tuple[str, ...] = ()
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    ignored: tuple[str, ...] = field(default=())


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` unless escaped with a backslash; unescape ``\\,`` ``\\$`` ``\\|`` ``\\\\``."""
    if "\\" not in text:
        return text.split(sep)
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in ",$|\\":
            if text[i + 1] == sep:
                current.append(text[i + 1])
            else:
                current.append(text[i:i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    """Remove search escapes from a single value."""
    return text.replace("\\,", ",").replace("\\$", "$").replace("\\|", "|").replace("\\\\", "\\")


def _param(resource_type: str, code: str) -> SearchParam:
    param = params_for(resource_type).get(code)
    if param is None:
        raise FhirError(f"unknown search parameter {code!r} for {resource_type}", code="not-supported")
    return param


def _parse_clause(resource_type: str, name: str, value: str) -> Clause:
    if name.startswith("_has:"):
        pieces = name.split(":", 3)
        if len(pieces) != 4:
            raise FhirError(f"malformed _has parameter {name!r}: expected _has:Type:reference:parameter")
        _, source_type, ref_code, rest = pieces
        if not is_served(source_type):
            raise FhirError(f"_has names an unknown resource type {source_type!r}")
        ref = _param(source_type, ref_code)
        if ref.type != "reference":
            raise FhirError(f"_has: {source_type}.{ref_code} is not a reference parameter")
        return HasClause(source_type, ref, _parse_clause(source_type, rest, value), resource_type)
    head, _, rest = name.partition(".")
    code, _, modifier = head.partition(":")
    param = _param(resource_type, code)
    if rest:
        if param.type != "reference":
            raise FhirError(f"cannot chain through {code!r}: it is not a reference parameter")
        targets = (modifier,) if modifier else tuple(t for t in param.targets if is_served(t))
        usable = tuple(t for t in targets if rest.partition(".")[0].split(":")[0] in params_for(t)
                       or rest.startswith("_has:"))
        if not usable:
            raise FhirError(f"chained parameter {rest!r} is not defined for any target of {code!r}")
        inner = _parse_clause(usable[0], rest, value)
        return ChainClause(param, usable, inner)
    mod = modifier or None
    if mod is not None:
        allowed = MODIFIERS.get(param.type, set())
        if param.type == "reference" and is_served(mod):
            pass  # type modifier, e.g. subject:Patient=123
        elif mod not in allowed:
            raise NotSupported(f"modifier :{mod} is not supported on {param.type} parameter {code!r}")
    return ParamClause(param, mod, tuple(split_escaped(value, ",")))


def _int(name: str, value: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise FhirError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise FhirError(f"{name} must be ≥ {minimum}, got {number}")
    return number


def _include(value: str, iterate: bool, rev: bool, resource_type: str) -> Include:
    if value == "*":
        return Include(resource_type, "*", None, iterate)
    parts = value.split(":")
    if len(parts) not in (2, 3) or not is_served(parts[0]):
        raise FhirError(f"malformed {'_revinclude' if rev else '_include'} value {value!r}")
    if parts[1] != "*":
        param = _param(parts[0], parts[1])
        if param.type != "reference":
            raise FhirError(f"{parts[0]}:{parts[1]} is not a reference parameter")
    return Include(parts[0], parts[1], parts[2] if len(parts) == 3 else None, iterate)


def parse_search(resource_type: str, query: list[tuple[str, str]], *, lenient: bool = False,
                 default_count: int = 20, max_count: int = 1000) -> SearchRequest:
    """Parse the (name, value) pairs of a search on ``resource_type``.

    Raises :class:`FhirError` (400) for unknown parameters unless ``lenient``, for bad modifiers
    and for malformed result parameters.
    """
    clauses: list[Clause] = []
    sort: list[SortKey] = []
    includes: list[Include] = []
    revincludes: list[Include] = []
    ignored: list[str] = []
    count, offset, total, summary = default_count, 0, "accurate", None
    elements: tuple[str, ...] = ()
    params = params_for(resource_type)
    for name, value in query:
        try:
            if name == "_count":
                count = min(_int(name, value), max_count)
            elif name == "_offset":
                offset = _int(name, value)
            elif name in ("_total", "_totalMethod"):
                if value not in ("none", "estimate", "accurate", "count"):
                    raise FhirError(f"_total must be none, estimate or accurate, got {value!r}")
                total = "none" if value == "none" else "accurate"
            elif name == "_summary":
                if value not in SUMMARY_VALUES:
                    raise FhirError(f"_summary must be one of {sorted(SUMMARY_VALUES)}, got {value!r}")
                summary = value
            elif name == "_elements":
                elements = tuple(e.strip() for e in value.split(",") if e.strip())
            elif name == "_sort":
                for key in value.split(","):
                    descending = key.startswith("-")
                    code = key.lstrip("-")
                    param = params.get(code)
                    if param is None or param.type in ("composite", "special"):
                        raise FhirError(f"cannot sort {resource_type} by {code!r}")
                    if param.union_of:  # not indexed itself: sort by its first part
                        param = params[param.union_of[0]]
                    sort.append(SortKey(param.code, param.type, descending))
            elif name.startswith("_include") or name.startswith("_revinclude"):
                rev = name.startswith("_revinclude")
                iterate = name.endswith((":iterate", ":recurse"))
                (revincludes if rev else includes).append(_include(value, iterate, rev, resource_type))
            elif name in ("_format", "_pretty"):
                continue
            else:
                clauses.append(_parse_clause(resource_type, name, value))
        except FhirError as exc:
            if lenient and exc.code in ("not-supported",):
                ignored.append(name)
                continue
            raise
    return SearchRequest(resource_type, tuple(clauses), tuple(sort), count, offset, total, summary,
                         elements, tuple(includes), tuple(revincludes), tuple(ignored))
