"""The FHIR RESTful API routes (http://hl7.org/fhir/R4/http.html), thin: parse HTTP, call the service,
shape the response. Errors are raised as :class:`FhirError` and become OperationOutcomes in one place
(``fhir_server.api.app``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.operations import invoke
from fhir_server.api.responses import (
    base_url,
    fhir_response,
    history_bundle,
    resource_bytes,
    searchset,
    version_headers,
)
from fhir_server.bundle import BundleProcessor
from fhir_server.errors import FhirError, NotFound, operation_outcome
from fhir_server.search.registry import is_served
from fhir_server.service import FhirService, WriteResult
from fhir_server.storage.base import StoredResource

router = APIRouter(prefix="/fhir")

JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", *JSON_TYPES)
_CONTROL = ("_format", "_pretty")


def service_of(request: Request) -> FhirService:
    return request.app.state.service


def _query(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k not in _CONTROL]


def _prefer(request: Request) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for part in request.headers.get("prefer", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            prefs[name.strip().lower()] = value.strip().strip('"')
    return prefs


def _check_type(type_: str) -> None:
    if not is_served(type_):
        raise NotFound(f"resource type {type_!r} is not served here", code="not-supported")


async def _body(request: Request, allowed: tuple[str, ...] = JSON_TYPES) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in allowed:
        raise FhirError(f"unsupported Content-Type {content_type!r}: use {' or '.join(allowed)}",
                        status=415, code="not-supported")
    raw = await request.body()
    if not raw:
        raise FhirError("the request has no body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError(f"the body is not valid JSON: {exc}", code="structure") from None


def _written(request: Request, result: WriteResult) -> Response:
    """The response to a create/update/patch, honouring ``Prefer: return=``."""
    stored = result.stored
    headers = version_headers(stored, base_url(request))
    preference = _prefer(request).get("return", "representation").lower()
    if preference == "minimal":
        return fhir_response(None, result.status, headers)
    if preference == "operationoutcome":
        verb = "created" if result.status == 201 else "updated"
        return fhir_response(operation_outcome("information", "informational",
                                               f"{stored.type}/{stored.id} {verb} (version {stored.version})"),
                             result.status, headers)
    return fhir_response(stored.body, result.status, headers)


def _read_response(request: Request, stored: StoredResource) -> Response:
    headers = version_headers(stored, base_url(request))
    del headers["Location"]
    summary = request.query_params.get("_summary")
    elements = tuple(e for e in request.query_params.get("_elements", "").split(",") if e)
    return fhir_response(resource_bytes(stored, summary, elements), 200, headers)


@router.post("")
@router.post("/")
async def transaction_or_batch(request: Request) -> Response:
    bundle = await _body(request)
    representation = _prefer(request).get("return") == "representation"
    processor = BundleProcessor(service_of(request))
    result = await run_in_threadpool(processor.process, bundle, representation=representation)
    return fhir_response(result)


@router.get("/_history")
async def system_history(request: Request) -> Response:
    return await _history(request, None, None)


async def _history(request: Request, type_: str | None, id_: str | None) -> Response:
    params = dict(request.query_params)
    for name in ("_count", "_offset"):
        if name in params and not params[name].isdigit():
            raise FhirError(f"{name} must be a non-negative integer")
    page = await run_in_threadpool(service_of(request).history, type_, id_, params)
    count = min(int(params.get("_count", service_of(request).settings.default_count)),
                service_of(request).settings.max_count)
    body = history_bundle(page, base_url(request), type_, id_, _query(request), int(params.get("_offset", 0)), count)
    return fhir_response(body)


@router.get("/{type_}")
async def search_type(request: Request, type_: str) -> Response:
    if type_.startswith("$"):
        return await invoke(request, type_, None, None)
    _check_type(type_)
    return await _search(request, type_, _query(request))


@router.post("/{type_}/_search")
async def search_post(request: Request, type_: str) -> Response:
    _check_type(type_)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FhirError("POST _search takes an application/x-www-form-urlencoded body", status=415,
                        code="not-supported")
    body = (await request.body()).decode("utf-8", errors="replace")
    pairs = _query(request) + parse_qsl(body, keep_blank_values=True)
    return await _search(request, type_, pairs)


async def _search(request: Request, type_: str, query: list[tuple[str, str]]) -> Response:
    lenient = _prefer(request).get("handling") == "lenient"
    base = base_url(request)
    result = await run_in_threadpool(service_of(request).search, type_, query, lenient=lenient, base_url=base)
    return fhir_response(searchset(result, base, query))


@router.post("/{type_}")
async def create(request: Request, type_: str) -> Response:
    if type_.startswith("$"):
        return await invoke(request, type_, None, None)
    _check_type(type_)
    resource = await _body(request)
    criteria = request.headers.get("if-none-exist")
    conditions = parse_qsl(criteria.lstrip("?"), keep_blank_values=True) if criteria else _query(request)
    result = await run_in_threadpool(service_of(request).create, type_, resource, if_none_exist=conditions or None)
    return _written(request, result)


@router.put("/{type_}")
async def conditional_update(request: Request, type_: str) -> Response:
    _check_type(type_)
    resource = await _body(request)
    result = await run_in_threadpool(service_of(request).conditional_update, type_, _query(request), resource,
                                     if_match=request.headers.get("if-match"))
    return _written(request, result)


@router.patch("/{type_}")
async def conditional_patch(request: Request, type_: str) -> Response:
    _check_type(type_)
    patch = await _body(request, PATCH_TYPES)
    result = await run_in_threadpool(service_of(request).conditional_patch, type_, _query(request), patch,
                                     if_match=request.headers.get("if-match"))
    return _written(request, result)


@router.delete("/{type_}")
async def conditional_delete(request: Request, type_: str) -> Response:
    _check_type(type_)
    await run_in_threadpool(service_of(request).conditional_delete, type_, _query(request))
    return Response(status_code=204)


@router.get("/{type_}/_history")
async def type_history(request: Request, type_: str) -> Response:
    _check_type(type_)
    return await _history(request, type_, None)


@router.get("/{type_}/{id_}")
async def read(request: Request, type_: str, id_: str) -> Response:
    if id_.startswith("$"):
        return await invoke(request, id_, type_, None)
    _check_type(type_)
    stored = await run_in_threadpool(service_of(request).read, type_, id_)
    return _read_response(request, stored)


@router.put("/{type_}/{id_}")
async def update(request: Request, type_: str, id_: str) -> Response:
    _check_type(type_)
    resource = await _body(request)
    result = await run_in_threadpool(service_of(request).update, type_, id_, resource,
                                     if_match=request.headers.get("if-match"))
    return _written(request, result)


@router.patch("/{type_}/{id_}")
async def patch(request: Request, type_: str, id_: str) -> Response:
    _check_type(type_)
    body = await _body(request, PATCH_TYPES)
    result = await run_in_threadpool(service_of(request).patch, type_, id_, body,
                                     if_match=request.headers.get("if-match"))
    return _written(request, result)


@router.delete("/{type_}/{id_}")
async def delete(request: Request, type_: str, id_: str) -> Response:
    _check_type(type_)
    await run_in_threadpool(service_of(request).delete, type_, id_, if_match=request.headers.get("if-match"))
    return Response(status_code=204)


@router.get("/{type_}/{id_}/_history")
async def instance_history(request: Request, type_: str, id_: str) -> Response:
    _check_type(type_)
    return await _history(request, type_, id_)


@router.get("/{type_}/{id_}/_history/{version}")
async def vread(request: Request, type_: str, id_: str, version: str) -> Response:
    _check_type(type_)
    stored = await run_in_threadpool(service_of(request).vread, type_, id_, version)
    return _read_response(request, stored)
