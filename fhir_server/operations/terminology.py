"""Terminology operations: ``CodeSystem/$lookup``, ``$validate-code`` (CodeSystem, ValueSet) and
``ConceptMap/$translate``, routed to the pure functions of :mod:`terminology.fhir`; and
:func:`seed_terminology`, which makes the CodeSystem, ValueSet and ConceptMap resources readable.

The site's reference data (``<data dir>/reference``) is used, so a site's protocol-map code rules
appear in the ``procedure-code-to-standard-procedure`` ConceptMap. An unknown code system, value set or
concept map is a 404 OperationOutcome; a missing input parameter a 400.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fhir_server.errors import FhirError, NotFound
from fhir_server.operations import Operation, OperationContext, OperationRequest, OperationResult, definition, register
from fhir_server.service import FhirService
from terminology import fhir as tx
from terminology.codes import DACS_FHIR_BASE
from terminology.errors import ReferenceDataError, TerminologyError, UnknownCodeError
from terminology.reference import ReferenceData, load_reference


def site_reference(data_dir: Path) -> ReferenceData:
    """The shipped reference data merged with ``<data_dir>/reference`` (a broken site file is a 500)."""
    try:
        return load_reference(Path(data_dir) / "reference")
    except ReferenceDataError as exc:
        raise FhirError(f"the site reference data cannot be used: {exc}", status=500, code="exception") from None


def seed_terminology(service: FhirService, reference: ReferenceData | None = None) -> int:
    """Store every CodeSystem, ValueSet and ConceptMap DACS serves, writing only what changed.

    Idempotent: a resource whose stored content (without ``meta``) equals the built one is left alone.
    Returns how many resources were written.
    """
    ref = reference or site_reference(service.settings.data_dir)
    written = 0
    for resource in tx.all_resources(ref):
        written += service.update(resource["resourceType"], resource["id"], resource).written
    return written


def _coding_input(request: OperationRequest) -> tuple[str | None, str | None, str | None]:
    """(system, code, display) from ``system``/``code``/``display`` or a ``coding`` / ``codeableConcept``."""
    coding = request.first("coding")
    if not isinstance(coding, dict):
        concept = request.first("codeableConcept")
        codings = concept.get("coding") if isinstance(concept, dict) else None
        coding = codings[0] if codings else None
    if isinstance(coding, dict):
        return coding.get("system"), coding.get("code"), coding.get("display")
    return request.first("system"), request.first("code"), request.first("display")


def _need(value: str | None, name: str, operation: str) -> str:
    if not value or not isinstance(value, str):
        raise FhirError(f"${operation} needs the parameter {name!r} (or a coding)", code="required")
    return value


def _run(fn: Callable[[], dict[str, Any]]) -> OperationResult:
    try:
        return OperationResult(fn())
    except UnknownCodeError as exc:
        raise NotFound(str(exc)) from None
    except TerminologyError as exc:
        raise FhirError(str(exc)) from None


def _instance_url(ref: ReferenceData, request: OperationRequest) -> str | None:
    """The canonical URL of the CodeSystem/ValueSet/ConceptMap an instance-level call names."""
    if request.id is None:
        return None
    if request.resource_type == "CodeSystem":
        for url, cs in tx.registry(ref).code_systems.items():
            if cs.id == request.id:
                return url
        raise NotFound(f"CodeSystem/{request.id} is not a code system DACS serves")
    return f"{DACS_FHIR_BASE}/{request.resource_type}/{request.id}"


def lookup(ctx: OperationContext, request: OperationRequest) -> OperationResult:
    """``CodeSystem/$lookup``: display and properties of ``system|code``."""
    ref = site_reference(ctx.settings.data_dir)
    system, code, _ = _coding_input(request)
    system = _instance_url(ref, request) or system
    version = request.first("version")
    return _run(lambda: tx.lookup(_need(system, "system", "lookup"), _need(code, "code", "lookup"),
                                  version=version, reference=ref))


def validate_code(ctx: OperationContext, request: OperationRequest) -> OperationResult:
    """``$validate-code`` on a ValueSet (``url``) or a CodeSystem (``url`` = the code system's URL)."""
    ref = site_reference(ctx.settings.data_dir)
    system, code, display = _coding_input(request)
    url = _instance_url(ref, request) or request.first("url")
    code = _need(code, "code", "validate-code")
    if request.resource_type == "CodeSystem":
        cs_url = _need(url or system, "url", "validate-code")
        return _run(lambda: tx.validate_code(code, system=cs_url, display=display, reference=ref))
    vs_url = _need(url, "url", "validate-code")
    return _run(lambda: tx.validate_code(code, system=system, url=vs_url, display=display, reference=ref))


def translate(ctx: OperationContext, request: OperationRequest) -> OperationResult:
    """``ConceptMap/$translate``: equivalents of ``system|code`` (in one map, or in all)."""
    ref = site_reference(ctx.settings.data_dir)
    system, code, _ = _coding_input(request)
    url = _instance_url(ref, request) or request.first("url")
    target = request.first("targetsystem") or request.first("target")
    return _run(lambda: tx.translate(_need(code, "code", "translate"), _need(system, "system", "translate"),
                                     url=url, target=target, reference=ref))


def _in(name: str, type_: str, doc: str, min_: int = 0) -> dict[str, Any]:
    return {"name": name, "use": "in", "min": min_, "max": "1", "type": type_, "documentation": doc}


def _out(name: str, type_: str, doc: str, min_: int = 0, max_: str = "1") -> dict[str, Any]:
    return {"name": name, "use": "out", "min": min_, "max": max_, "type": type_, "documentation": doc}


register(Operation(
    code="lookup", handler=lookup, resource_types=("CodeSystem",), type_level=True, instance=True,
    definition=definition(
        "lookup", "Lookup", "Details of a code: name of its system, display and properties (FHIR R4 $lookup).",
        resource=["CodeSystem"], type_level=True, instance=True,
        parameters=[
            _in("code", "code", "the code"), _in("system", "uri", "its code system"),
            _in("version", "string", "code system version"), _in("coding", "Coding", "instead of system and code"),
            _out("name", "string", "code system name", 1), _out("version", "string", "code system version"),
            _out("display", "string", "display of the code", 1),
            {"name": "property", "use": "out", "min": 0, "max": "*", "documentation": "concept properties",
             "part": [_out("code", "code", "property code", 1), _out("value", "string", "property value", 1)]},
        ]),
))

register(Operation(
    code="validate-code", handler=validate_code, resource_types=("CodeSystem", "ValueSet"), type_level=True,
    instance=True,
    definition=definition(
        "validate-code", "ValidateCode",
        "Whether a code is in a value set (ValueSet/$validate-code) or a code system (CodeSystem/$validate-code), "
        "and whether its display matches.",
        resource=["CodeSystem", "ValueSet"], type_level=True, instance=True,
        parameters=[
            _in("url", "uri", "the ValueSet (or, on CodeSystem, the code system) canonical URL"),
            _in("code", "code", "the code"), _in("system", "uri", "its code system"),
            _in("display", "string", "display to check"), _in("coding", "Coding", "instead of system and code"),
            _in("codeableConcept", "CodeableConcept", "its first coding is checked"),
            _out("result", "boolean", "valid or not", 1), _out("message", "string", "why not"),
            _out("display", "string", "the display DACS knows"),
        ]),
))

register(Operation(
    code="translate", handler=translate, resource_types=("ConceptMap",), type_level=True, instance=True,
    definition=definition(
        "translate", "Translate",
        "Equivalents of a code in the DACS concept maps (legacy SRT to SNOMED CT, anatomy to body region, "
        "standard procedure to body region, local procedure codes to standard procedures).",
        resource=["ConceptMap"], type_level=True, instance=True,
        parameters=[
            _in("url", "uri", "one ConceptMap (default: all)"), _in("code", "code", "the code"),
            _in("system", "uri", "its code system"), _in("coding", "Coding", "instead of system and code"),
            _in("target", "uri", "target ValueSet"), _in("targetsystem", "uri", "target code system"),
            _out("result", "boolean", "a mapping was found", 1), _out("message", "string", "how it was found"),
            {"name": "match", "use": "out", "min": 0, "max": "*", "documentation": "one per target",
             "part": [_out("equivalence", "code", "R4 ConceptMapEquivalence", 1),
                      _out("concept", "Coding", "the target", 1), _out("source", "uri", "the ConceptMap", 1)]},
        ]),
))
