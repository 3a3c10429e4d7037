"""The FastAPI application: wiring of settings, store, service and routes, and the one place where
errors become OperationOutcomes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhir_server.api.capability import capability_statement
from fhir_server.api.operations import router as operations_router
from fhir_server.api.responses import base_url, fhir_response
from fhir_server.api.rest import router as rest_router
from fhir_server.errors import FhirError, operation_outcome
from fhir_server.operations import Operation, OperationContext, load_operations
from fhir_server.service import FhirService
from fhir_server.settings import Settings
from fhir_server.storage import open_store

log = logging.getLogger("dacs.http")
_HTTP_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported", 415: "not-supported"}


def create_app(settings: Settings, service: FhirService | None = None,
               extras: dict[str, Any] | None = None) -> FastAPI:
    """The DACS FHIR application over ``service`` (over a store opened from ``settings`` when not given).

    The store is closed at shutdown only when the app opened it; a given service's store belongs to
    its owner (``dacs serve``'s runtime closes it after the receivers have stopped).
    """
    owns_store = service is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_store:
            app.state.store.close()

    app = FastAPI(title="DACS FHIR R4 server", version="0.1.0", lifespan=lifespan,
                  docs_url="/docs", openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.service = service if service is not None else FhirService(open_store(settings.store_url()), settings)
    app.state.store = app.state.service.store

    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, exc: FhirError) -> Response:
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.diagnostics)
        return fhir_response(exc.outcome(), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "processing")
        text = f"{request.method} {request.url.path}: {exc.detail}"
        return fhir_response(operation_outcome("error", code, text), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> Response:
        return fhir_response(operation_outcome("error", "invalid", str(exc.errors()[:3])), 400)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return fhir_response(operation_outcome("fatal", "exception", f"internal error: {type(exc).__name__}"), 500)

    @app.middleware("http")
    async def format_check(request: Request, call_next):  # type: ignore[no-untyped-def]
        fmt = request.query_params.get("_format")
        if fmt and "json" not in fmt:
            return fhir_response(operation_outcome("error", "not-supported",
                                                   f"_format={fmt} is not supported: this server speaks JSON"), 406)
        return await call_next(request)

    operations = load_operations()
    app.state.operation_context = OperationContext(app.state.service, settings, dict(extras or {}))
    seed_operation_definitions(app.state.service, operations)

    @app.get("/fhir/metadata")
    async def metadata(request: Request) -> Response:
        declared = [{"code": op.code, "url": op.url, "resource": list(op.resource_types)}
                    for op in operations.values()]
        return fhir_response(capability_statement(base_url(request), declared))

    app.include_router(rest_router)
    app.include_router(operations_router)
    return app


def seed_operation_definitions(service: FhirService, operations: dict[str, Operation]) -> None:
    """Store each registered OperationDefinition (as ``OperationDefinition/<code>``) if it changed."""
    for op in operations.values():
        service.update("OperationDefinition", op.code, op.definition)  # a no-op when unchanged
