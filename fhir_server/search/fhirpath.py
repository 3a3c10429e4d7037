"""The FHIRPath subset that the R4 SearchParameter expressions use, compiled to plain Python.

Indexing runs every search parameter of a type over every written resource, so it must be cheap:
a general FHIRPath engine (fhirpathpy) evaluates ~8,000 expressions/s here, far too slow for ≥1,000
indexed resources/s with ~30 parameters each. The expressions of the R4 SearchParameters for the
types DACS serves use only:

* paths ``Type.a.b`` and ``a[0]`` (choice elements such as ``Observation.value`` match ``valueQuantity`` …),
* unions ``a | b``,
* casts ``(X as T)``, ``X.as(T)``, ``X.ofType(T)``,
* filters ``.where(resolve() is T)`` and ``.where(field='literal')``,
* one boolean test, ``Patient.deceased.exists() and Patient.deceased != false``.

:func:`compile_expression` raises :class:`UnsupportedExpression` for anything else, so a new
definition cannot be silently mis-indexed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A node is a value plus the FHIR type its choice-element suffix reveals ("Quantity"), or None.
Node = tuple[Any, str | None]
Evaluator = Callable[[Any], list[Node]]
_MISSING = object()


class UnsupportedExpression(ValueError):
    """The expression uses FHIRPath beyond the supported subset."""


@dataclass(frozen=True)
class _Field:
    """A child step. ``choice``: True for a choice element (``value[x]``), False when the element is
    known not to be one (a plain dict look-up), None when unknown (inside a data type)."""

    name: str
    choice: bool | None = None


@dataclass(frozen=True)
class _Index:
    name: str
    position: int


@dataclass(frozen=True)
class _As:
    type_name: str


@dataclass(frozen=True)
class _WhereResolveIs:
    type_name: str


@dataclass(frozen=True)
class _WhereEquals:
    field: str
    value: str


_Step = _Field | _Index | _As | _WhereResolveIs | _WhereEquals

_RE_WHERE_RESOLVE = re.compile(r"^where\(resolve\(\) is (\w+)\)$")
_RE_WHERE_EQ = re.compile(r"^where\((\w+)\s*=\s*'([^']*)'\)$")
_RE_AS_FN = re.compile(r"^(?:as|ofType)\((\w+)\)$")
_RE_PAREN_AS = re.compile(r"^\((.+) as (\w+)\)(?:\.(.+))?$")
_RE_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_RE_INDEXED = re.compile(r"^([A-Za-z_]\w*)\[(\d+)\]$")
_RE_DECEASED = re.compile(r"^(\w+)\.(\w+)\.exists\(\) and \1\.\2 != false$")


def split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` where it is not inside parentheses or quotes."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _parse_steps(path: str) -> list[_Step]:
    steps: list[_Step] = []
    for raw in split_top_level(path, "."):
        if m := _RE_WHERE_RESOLVE.match(raw):
            steps.append(_WhereResolveIs(m.group(1)))
        elif m := _RE_WHERE_EQ.match(raw):
            steps.append(_WhereEquals(m.group(1), m.group(2)))
        elif m := _RE_AS_FN.match(raw):
            steps.append(_As(m.group(1)))
        elif _RE_IDENT.match(raw):
            steps.append(_Field(raw))
        elif m := _RE_INDEXED.match(raw):
            steps.append(_Index(m.group(1), int(m.group(2))))
        else:
            raise UnsupportedExpression(f"unsupported FHIRPath step {raw!r} in {path!r}")
    return steps


def _parse_part(part: str) -> list[_Step]:
    if m := _RE_PAREN_AS.match(part):
        steps = [*_parse_steps(m.group(1)), _As(m.group(2))]
        if m.group(3):
            steps += _parse_steps(m.group(3))
        return steps
    return _parse_steps(part)


def _children(value: Any, name: str, choice: bool | None = None) -> list[Node]:
    if not isinstance(value, dict):
        return []
    if name in value:
        found = value[name]
        return [(v, None) for v in found] if isinstance(found, list) else [(found, None)]
    if choice is False:
        return []
    # Choice element: ``value`` matches ``valueQuantity``; the suffix names the type.
    out: list[Node] = []
    for key, found in value.items():
        if len(key) > len(name) and key.startswith(name) and key[len(name)].isupper():
            suffix = key[len(name):]
            out.extend((v, suffix) for v in (found if isinstance(found, list) else [found]))
    return out


def _same_type(hint: str | None, type_name: str) -> bool:
    return hint is None or hint.lower() == type_name.lower()


def _reference_is(value: Any, type_name: str) -> bool:
    if not isinstance(value, dict):
        return False
    ref = value.get("reference") or ""
    if ref.startswith(type_name + "/") or f"/{type_name}/" in ref:
        return True
    return value.get("type") == type_name


def _run(steps: list[_Step], nodes: list[Node]) -> list[Node]:
    # The plain field step is inlined: it runs ~100 times per indexed resource.
    for step in steps:
        if type(step) is _Field:
            name, choice = step.name, step.choice
            nxt: list[Node] = []
            for value, _ in nodes:
                if type(value) is not dict:
                    continue
                found = value.get(name, _MISSING)
                if found is not _MISSING:
                    if type(found) is list:
                        nxt.extend((v, None) for v in found)
                    else:
                        nxt.append((found, None))
                elif choice is not False:
                    nxt.extend(_children(value, name, choice))
            nodes = nxt
        elif isinstance(step, _Index):
            children = [child for value, _ in nodes for child in _children(value, step.name)]
            nodes = children[step.position:step.position + 1]
        elif isinstance(step, _As):
            nodes = [(v, step.type_name) for v, hint in nodes if _same_type(hint, step.type_name)]
        elif isinstance(step, _WhereResolveIs):
            nodes = [(v, h) for v, h in nodes if _reference_is(v, step.type_name)]
        elif isinstance(step, _WhereEquals):
            nodes = [(v, h) for v, h in nodes if isinstance(v, dict) and v.get(step.field) == step.value]
        if not nodes:
            break
    return nodes


def _mark_choices(steps: list[_Step], resource_type: str, element_paths: frozenset[str]) -> list[_Step]:
    """Tell each field step whether it is a choice element, from the type's element paths."""
    path, out = resource_type, []
    for step in steps:
        if isinstance(step, _Field):
            path = f"{path}.{step.name}"
            if f"{path}[x]" in element_paths:
                step = _Field(step.name, True)
            elif path in element_paths:
                step = _Field(step.name, False)
        elif isinstance(step, _Index):
            path = f"{path}.{step.name}"
        out.append(step)
    return out


def compile_expression(expression: str, resource_type: str | None = None,
                       element_paths: frozenset[str] = frozenset()) -> Evaluator:
    """Compile a SearchParameter expression into a function ``node -> [(value, type hint)]``.

    With ``resource_type``, only the union members that start with that type (or ``Resource``) are
    kept and the type name itself is skipped; without it the expression is relative (composite
    components such as ``value.as(Quantity)``).
    """
    programs: list[list[_Step]] = []
    for part in split_top_level(expression, "|"):
        if m := _RE_DECEASED.match(part):
            if resource_type is None or m.group(1) == resource_type:
                programs.append([_Field(m.group(2)), _As("__truthy__")])
            continue
        steps = _parse_part(part)
        if resource_type is not None:
            head = steps[0]
            if not isinstance(head, _Field) or head.name not in (resource_type, "Resource", "DomainResource"):
                continue
            steps = _mark_choices(steps[1:], resource_type, element_paths)
        programs.append(steps)

    def evaluate(node: Any) -> list[Node]:
        out: list[Node] = []
        for steps in programs:
            if steps and isinstance(steps[-1], _As) and steps[-1].type_name == "__truthy__":
                values = _run(steps[:-1], [(node, None)])
                if any(v is not False for v, _ in values):
                    out.append((True, "boolean"))
                continue
            out.extend(_run(steps, [(node, None)]))
        return out

    evaluate.programs = programs  # type: ignore[attr-defined]
    evaluate.roots = _roots(programs)  # type: ignore[attr-defined]
    return evaluate


def _roots(programs: list[list[_Step]]) -> frozenset[str] | None:
    """Top-level element names a resource needs for any program to yield (None: cannot tell)."""
    roots = set()
    for steps in programs:
        if not steps:
            return None
        head = steps[0]
        if isinstance(head, _Field | _Index):
            roots.add(head.name)
        else:
            return None
    return frozenset(roots)


def top_level_names(resource: dict[str, Any]) -> set[str]:
    """The element names of a resource, with choice keys also under their base name (valueQuantity → value)."""
    names = set(resource)
    for key in resource:
        for i, ch in enumerate(key):
            if ch.isupper():
                names.add(key[:i])
                break
    return names

