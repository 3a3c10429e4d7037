"""Routes for FHIR operations: ``$op`` at system, type and instance level, GET and POST.

Input parameters come from the query string and, for POST, from a ``Parameters`` body (primitive
``value[x]`` and ``resource`` parts). Dispatch goes through the one registry in
:mod:`fhir_server.operations`.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.responses import FHIR_JSON, base_url, fhir_response
from fhir_server.errors import FhirError, NotFound
from fhir_server.operations import REGISTRY, Operation, OperationContext, OperationRequest
from fhir_server.search.registry import is_served

router = APIRouter(prefix="/fhir")


def _parameters(body: dict[str, Any]) -> list[tuple[str, Any]]:
    if body.get("resourceType") != "Parameters":
        raise FhirError("an operation's POST body is a Parameters resource")
    out: list[tuple[str, Any]] = []
    for part in body.get("parameter", []):
        name = part.get("name")
        value = part.get("resource")
        if value is None:
            value = next((v for k, v in part.items() if k.startswith("value")), None)
        if value is None and "part" in part:
            value = part["part"]
        out.append((name, value))
    return out


async def invoke(request: Request, code: str, type_: str | None, id_: str | None) -> Response:
    """Run operation ``code`` (with its ``$``) at system, type or instance level."""
    if not code.startswith("$"):
        raise NotFound(f"{request.url.path} is not a FHIR interaction or operation")
    operation: Operation | None = REGISTRY.get(code[1:])
    if operation is None:
        raise NotFound(f"operation {code} is not supported", code="not-supported")
    level_ok = (operation.system if type_ is None else
                (operation.instance if id_ else operation.type_level) and type_ in operation.resource_types)
    if not level_ok:
        where = "the system" if type_ is None else (f"{type_} instances" if id_ else f"the {type_} type")
        raise FhirError(f"operation {code} is not defined on {where}", status=400, code="not-supported")
    if type_ is not None and not is_served(type_):
        raise NotFound(f"resource type {type_!r} is not served here")
    if request.method == "GET" and operation.affects_state:
        raise FhirError(f"operation {code} changes data: use POST", status=405, code="not-supported")
    params: list[tuple[str, Any]] = [(k, v) for k, v in request.query_params.multi_items() if k != "_format"]
    body = None
    if request.method == "POST":
        raw = await request.body()
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise FhirError(f"the body is not valid JSON: {exc}") from None
            params += _parameters(body)
    ctx: OperationContext = request.app.state.operation_context
    call = OperationRequest(type_, id_, params, body, request.headers.get("accept", FHIR_JSON), base_url(request))
    result = await run_in_threadpool(operation.handler, ctx, call)
    if result.content is not None:
        return Response(result.content, status_code=result.status, media_type=result.media_type)
    return fhir_response(result.resource, result.status)


# System- and type-level GETs and system-level POSTs share their paths with search, read and create:
# those routes hand a "$…" segment to invoke(). These routes are included after the REST routes.
@router.post("/{type_}/{code}", include_in_schema=False)
async def type_operation(request: Request, type_: str, code: str) -> Response:
    if not code.startswith("$"):
        raise FhirError(f"POST is not allowed on {request.url.path}", status=405, code="not-supported")
    return await invoke(request, code, type_, None)


@router.api_route("/{type_}/{id_}/{code}", methods=["GET", "POST"], include_in_schema=False)
async def instance_operation(request: Request, type_: str, id_: str, code: str) -> Response:
    return await invoke(request, code, type_, id_)
