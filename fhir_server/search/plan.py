"""Plan a parsed search: turn each clause into the backend-neutral filter tree.

Value semantics follow http://hl7.org/fhir/R4/search.html (prefixes, implicit precision ranges,
token ``system|code`` forms, modifiers). Chains and ``_has`` are resolved by running their inner
search first through ``resolve`` (backend-independent, capped by ``max_chain_matches``) and turning
the ids it returns into a plain reference or id match.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fhir_server.errors import FhirError, TooCostly
from fhir_server.search.filters import (
    AllConds,
    And,
    AnyConds,
    Cond,
    CondExpr,
    Exists,
    Filter,
    Match,
    Not,
    Nothing,
    all_of,
    any_of,
)
from fhir_server.search.index import UCUM
from fhir_server.search.registry import SearchParam, params_for
from fhir_server.search.request import ChainClause, Clause, ParamClause, split_escaped, unescape
from fhir_server.search.units import canonical_quantity
from fhir_server.search.values import BadValue, date_range, normalise_string, number_range

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
DAY_MS = 86_400_000

# resolve(resource_type, filter, limit) -> matching resources' (id, resource dict) pairs
Resolver = Callable[[str, Filter, int], list[tuple[str, dict]]]


def _prefix(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in PREFIXES and (value[2].isdigit() or value[2] in "-+."):
        return value[:2], value[2:]
    return "eq", value


def _range_cond(prefix: str, qlo: float, qhi: float, exclusive_hi: bool) -> CondExpr:
    """Conditions on an entry's ``[lo, hi]`` for a search range (closed, or half-open for numbers)."""
    below_hi = Cond("hi", "lt" if exclusive_hi else "le", qhi)
    within = AllConds((Cond("lo", "ge", qlo), below_hi))
    if prefix == "eq":
        return within
    if prefix == "ne":
        return AnyConds((Cond("lo", "lt", qlo), Cond("hi", "ge" if exclusive_hi else "gt", qhi)))
    if prefix == "gt":
        return Cond("hi", "ge" if exclusive_hi else "gt", qhi)
    if prefix == "lt":
        return Cond("lo", "lt", qlo)
    if prefix == "ge":
        return AnyConds((Cond("hi", "ge" if exclusive_hi else "gt", qhi), within))
    if prefix == "le":
        return AnyConds((Cond("lo", "lt", qlo), within))
    if prefix == "sa":
        return Cond("lo", "ge" if exclusive_hi else "gt", qhi)
    if prefix == "eb":
        return Cond("hi", "lt", qlo)
    raise AssertionError(prefix)


def _date_cond(value: str) -> CondExpr:
    prefix, text = _prefix(value)
    try:
        qlo, qhi = date_range(text)
    except BadValue as exc:
        raise FhirError(f"invalid date search value {value!r}: {exc}") from None
    if prefix == "ap":
        now = time.time() * 1000
        slack = max(abs(now - qlo) * 0.1, DAY_MS)
        return AllConds((Cond("hi", "ge", qlo - slack), Cond("lo", "le", qhi + slack)))
    return _range_cond(prefix, qlo, qhi, exclusive_hi=False)


def _number_cond(prefix: str, text: str) -> CondExpr:
    try:
        value, qlo, qhi = number_range(text)
    except BadValue as exc:
        raise FhirError(f"invalid number search value {text!r}: {exc}") from None
    if prefix == "ap":
        slack = abs(value) * 0.1
        return AllConds((Cond("lo", "ge", value - slack), Cond("hi", "le", value + slack)))
    if prefix in ("gt", "lt", "ge", "le", "sa", "eb"):
        op = {"gt": "gt", "sa": "gt", "lt": "lt", "eb": "lt", "ge": "ge", "le": "le"}[prefix]
        return Cond("lo" if op in ("gt", "ge") else "hi", op, value)  # type: ignore[arg-type]
    return _range_cond(prefix, qlo, qhi, exclusive_hi=True)


def _token_match(param: SearchParam, p: str, modifier: str | None, value: str) -> Filter:
    if modifier == "text":
        return Match(p, Cond("t", "prefix", normalise_string(unescape(value))))
    parts = split_escaped(value, "|")
    if len(parts) == 1:
        cond: CondExpr | None = Cond("k", "eq", parts[0])
    elif len(parts) == 2:
        system, code = parts
        system_cond = Cond("s", "null") if system == "" else Cond("s", "eq", system)
        cond = all_of(system_cond, Cond("k", "eq", code) if code else None)
    else:
        raise FhirError(f"invalid token {value!r} for {param.code!r}: at most one '|'")
    return Match(p, cond)


def _string_match(p: str, modifier: str | None, value: str) -> Match:
    text = unescape(value)
    if modifier == "exact":
        return Match(p, Cond("t", "eq", text))
    normalised = normalise_string(text)
    return Match(p, Cond("k", "contains" if modifier == "contains" else "prefix", normalised))


def _reference_match(param: SearchParam, modifier: str | None, value: str, base_url: str) -> Match:
    text = unescape(value)
    if modifier == "identifier":
        parts = split_escaped(value, "|")
        if len(parts) == 2:
            return Match(param.code + ":identifier",
                         all_of(Cond("s", "eq", parts[0]) if parts[0] else None, Cond("k", "eq", parts[1])))
        return Match(param.code + ":identifier", Cond("k", "eq", text))
    if base_url and text.startswith(base_url.rstrip("/") + "/"):
        text = text[len(base_url.rstrip("/")) + 1:]
    text = text.split("/_history/")[0]
    if modifier:  # type modifier
        return Match(param.code, Cond("k", "eq", f"{modifier}/{text}"))
    if "/" in text or ":" in text:
        return Match(param.code, Cond("k", "eq", text))
    if len(param.targets) == 1:
        return Match(param.code, Cond("k", "eq", f"{param.targets[0]}/{text}"))
    return Match(param.code, Cond("t", "eq", text))


def _uri_match(p: str, modifier: str | None, value: str) -> Match:
    text = unescape(value)
    if modifier == "below":
        return Match(p, Cond("k", "prefix", text))
    if modifier == "above":
        ancestors, current = [], text
        while current and "/" in current:
            ancestors.append(current)
            current = current.rsplit("/", 1)[0]
            if current.endswith(("/", ":")):
                break
        return Match(p, Cond("k", "in", tuple(ancestors or [text])))
    return Match(p, Cond("k", "eq", text))


def _quantity_match(p: str, value: str) -> Filter:
    parts = split_escaped(value, "|")
    if len(parts) not in (1, 3):
        raise FhirError(f"invalid quantity {value!r}: expected [prefix]number[|system|code]")
    prefix, number = _prefix(parts[0])
    system, code = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
    if system == UCUM and code:
        try:
            converted = canonical_quantity(1.0, code)  # the unit's factor (dose units are not affine)
        except ValueError:
            converted = None
        if converted is not None:
            scale = converted[0]
            # keep the implied precision of the search value through the conversion; values stored in
            # the canonical unit have no $canonical entry of their own
            cond = all_of(Cond("k", "eq", converted[1]), _scale(_number_cond(prefix, number), scale))
            return any_of([Match(p + "$canonical", cond), Match(p, all_of(Cond("s", "eq", UCUM), cond))])
    return Match(p, all_of(Cond("s", "eq", system) if system else None,
                           Cond("k", "eq", code) if code else None, _number_cond(prefix, number)))


def _scale(cond: CondExpr, factor: float) -> CondExpr:
    if isinstance(cond, Cond):
        return Cond(cond.column, cond.op, cond.value * factor) if isinstance(cond.value, float) else cond
    parts = tuple(_scale(c, factor) for c in cond.parts)
    return AllConds(parts) if isinstance(cond, AllConds) else AnyConds(parts)


def _composite_match(param: SearchParam, value: str, base_url: str) -> Match:
    pieces = split_escaped(value, "$")
    if len(pieces) != 2 or len(param.components) != 2:
        raise FhirError(f"composite {param.code!r} expects two values joined by '$', got {value!r}")
    first = _token_match(param, param.code, None, pieces[0])
    assert isinstance(first, Match)
    second_type = param.components[1].type
    if second_type in ("quantity", "number"):
        qparts = split_escaped(pieces[1], "|")
        prefix, number = _prefix(qparts[0])
        second: CondExpr | None = _number_cond(prefix, number)
    elif second_type == "date":
        second = _date_cond(pieces[1])
    else:
        code = split_escaped(pieces[1], "|")[-1]
        second = Cond("t", "eq", code if second_type == "token" else normalise_string(code))
    return Match(param.code, all_of(first.cond, second))


def _value_filter(param: SearchParam, modifier: str | None, value: str, base_url: str) -> Filter:
    kind = param.type
    if kind == "token":
        return _token_match(param, param.code, modifier, value)
    if kind == "string":
        return _string_match(param.code, modifier, value)
    if kind == "date":
        return Match(param.code, _date_cond(value))
    if kind == "number":
        prefix, text = _prefix(value)
        return Match(param.code, _number_cond(prefix, text))
    if kind == "quantity":
        return _quantity_match(param.code, value)
    if kind == "reference":
        return _reference_match(param, modifier, value, base_url)
    if kind == "uri":
        return _uri_match(param.code, modifier, value)
    if kind == "composite":
        return _composite_match(param, value, base_url)
    raise FhirError(f"search parameter {param.code!r} of type {kind} is not supported", code="not-supported")


def plan_clause(clause: Clause, resolve: Resolver, *, base_url: str = "", max_matches: int = 10000) -> Filter:
    """The filter for one clause (its values OR-ed)."""
    if isinstance(clause, ParamClause) and clause.param.union_of:
        params = params_for(clause.param.resource_type)
        parts = [plan_clause(ParamClause(params[code], clause.modifier, clause.values), resolve, base_url=base_url,
                             max_matches=max_matches) for code in clause.param.union_of]
        absent = clause.modifier == "not" or (clause.modifier == "missing" and clause.values == ("true",))
        if absent:
            return And(tuple(parts))  # none of the parts has it
        return any_of(parts)
    if isinstance(clause, ParamClause):
        if clause.modifier == "missing":
            if len(clause.values) != 1 or clause.values[0] not in ("true", "false"):
                raise FhirError(f":missing takes true or false, got {','.join(clause.values)!r}")
            exists = Exists(clause.param.code)
            return Not(exists) if clause.values[0] == "true" else exists
        if clause.modifier == "not":
            return Not(any_of([_token_match(clause.param, clause.param.code, None, v) for v in clause.values]))
        return any_of([_value_filter(clause.param, clause.modifier, v, base_url) for v in clause.values])
    if isinstance(clause, ChainClause):
        refs: list[str] = []
        for target in clause.targets:
            inner = plan_clause(clause.inner, resolve, base_url=base_url, max_matches=max_matches)
            found = resolve(target, inner, max_matches + 1)
            if len(found) > max_matches:
                raise TooCostly(f"chained search on {clause.param.code} matches more than {max_matches} "
                                f"{target} resources; narrow it")
            refs.extend(f"{target}/{rid}" for rid, _ in found)
        return Match(clause.param.code, Cond("k", "in", tuple(refs))) if refs else Nothing()
    inner = plan_clause(clause.inner, resolve, base_url=base_url, max_matches=max_matches)
    found = resolve(clause.source_type, inner, max_matches + 1)
    if len(found) > max_matches:
        raise TooCostly(f"_has on {clause.source_type} matches more than {max_matches} resources; narrow it")
    ids: set[str] = set()
    for _, resource in found:
        for value, _ in clause.ref.evaluate(resource):
            ref = value.get("reference", "") if isinstance(value, dict) else ""
            type_name, _, rid = ref.split("/_history/")[0].rpartition("/")
            if type_name.rpartition("/")[2] == clause.target_type:
                ids.add(rid)
    return Match("_id", Cond("k", "in", tuple(sorted(ids)))) if ids else Nothing()
