"""FHIR operations (``$name``), registered in one table with their OperationDefinition.

An operation is a function ``handler(ctx, request) -> OperationResult`` plus the OperationDefinition
that declares it. The routes (``fhir_server.api.operations``) dispatch ``/fhir/$op``,
``/fhir/Type/$op`` and ``/fhir/Type/id/$op`` (GET and POST) through :data:`REGISTRY`; the
CapabilityStatement lists every registered operation; the OperationDefinitions are written to the store
at start-up so that ``GET /fhir/OperationDefinition/<id>`` serves them.

Register an operation by calling :func:`register` at import time of a module listed in
:data:`OPERATION_MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_server.service import FhirService
from fhir_server.settings import Settings

# Modules that register operations (imported once by load_operations()).
OPERATION_MODULES: tuple[str, ...] = ("fhir_server.operations.dose", "fhir_server.operations.terminology")

OPERATION_BASE = "http://dacs.example.org/fhir/OperationDefinition"


@dataclass(frozen=True)
class OperationRequest:
    """One invocation: where (system, type or instance), and the input parameters."""

    resource_type: str | None
    id: str | None
    parameters: list[tuple[str, Any]]  # from the query string and/or a Parameters body
    body: dict[str, Any] | None
    accept: str
    base_url: str

    def first(self, name: str, default: Any = None) -> Any:
        return next((v for n, v in self.parameters if n == name), default)


@dataclass(frozen=True)
class OperationResult:
    """A resource (usually Parameters) or raw bytes with their media type."""

    resource: dict[str, Any] | None = None
    content: bytes | None = None
    media_type: str = "application/fhir+json"
    status: int = 200


@dataclass
class OperationContext:
    """What a handler may use: the FHIR service and the settings (and whatever the runtime adds)."""

    service: FhirService
    settings: Settings
    extras: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[OperationContext, OperationRequest], OperationResult]


@dataclass(frozen=True)
class Operation:
    """A registered operation: its code (without ``$``), where it applies, and its definition."""

    code: str
    handler: Handler
    definition: dict[str, Any]
    resource_types: tuple[str, ...] = ()
    system: bool = False
    type_level: bool = False
    instance: bool = False
    affects_state: bool = False

    @property
    def url(self) -> str:
        return self.definition["url"]


REGISTRY: dict[str, Operation] = {}


def register(operation: Operation) -> Operation:
    """Add an operation to the registry (its code must be unique)."""
    if operation.code in REGISTRY:
        raise ValueError(f"operation ${operation.code} is registered twice")
    REGISTRY[operation.code] = operation
    return operation


def load_operations() -> dict[str, Operation]:
    """Import every module that registers operations; returns the registry."""
    for module in OPERATION_MODULES:
        importlib.import_module(module)
    return REGISTRY


def definition(code: str, name: str, description: str, *, resource: list[str], system: bool = False,
               type_level: bool = False, instance: bool = False, affects_state: bool = False,
               parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """An OperationDefinition resource (FHIR R4) for a DACS operation."""
    return {
        "resourceType": "OperationDefinition", "id": code, "url": f"{OPERATION_BASE}/{code}",
        "name": name, "status": "active", "kind": "operation", "code": code, "description": description,
        "affectsState": affects_state, "resource": resource, "system": system, "type": type_level,
        "instance": instance, "parameter": parameters,
    }
