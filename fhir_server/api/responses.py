"""FHIR HTTP responses: resources served from their stored bytes, Bundles assembled as bytes."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Request, Response

from fhir_server.api.shaping import shape
from fhir_server.service import SearchResult
from fhir_server.storage.base import Page, StoredResource

FHIR_JSON = "application/fhir+json; charset=utf-8"


def fhir_response(content: dict[str, Any] | bytes | None, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A response with the FHIR JSON media type (``content`` already serialised when bytes)."""
    body = b"" if content is None else content if isinstance(content, bytes) else orjson.dumps(content)
    return Response(body, status_code=status, media_type=FHIR_JSON if content is not None else None,
                    headers=headers)


def base_url(request: Request) -> str:
    """The FHIR base URL as the client sees it (configured, or derived from the request)."""
    configured = request.app.state.settings.base_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def version_headers(stored: StoredResource, base: str) -> dict[str, str]:
    """ETag, Last-Modified and Location of a stored version."""
    modified = datetime.fromisoformat(stored.last_updated.replace("Z", "+00:00"))
    return {"ETag": stored.etag, "Last-Modified": format_datetime(modified, usegmt=True),
            "Location": f"{base}/{stored.type}/{stored.id}/_history/{stored.version}"}


def resource_bytes(stored: StoredResource, summary: str | None = None, elements: tuple[str, ...] = ()) -> bytes:
    """The stored JSON, or its reduced form when ``_summary``/``_elements`` ask for one."""
    assert stored.body is not None
    if summary in (None, "false") and not elements:
        return stored.body
    return orjson.dumps(shape(stored.resource(), summary, elements))


def _page_url(base: str, type_: str | None, query: list[tuple[str, str]], offset: int) -> str:
    kept = [(k, v) for k, v in query if k != "_offset"]
    if offset:
        kept.append(("_offset", str(offset)))
    path = f"{base}/{type_}" if type_ else base
    return f"{path}?{urlencode(kept)}" if kept else path


def _links(base: str, type_: str | None, query: list[tuple[str, str]], offset: int, count: int,
           shown: int, total: int | None) -> list[dict[str, str]]:
    links = [{"relation": "self", "url": _page_url(base, type_, query, offset)}]
    if count and offset > 0:
        links.append({"relation": "first", "url": _page_url(base, type_, query, 0)})
        links.append({"relation": "previous", "url": _page_url(base, type_, query, max(offset - count, 0))})
    more = (offset + shown < total) if total is not None else shown == count and count > 0
    if count and more:
        links.append({"relation": "next", "url": _page_url(base, type_, query, offset + count)})
    return links


def _bundle_head(kind: str, total: int | None, links: list[dict[str, str]]) -> bytes:
    head: dict[str, Any] = {"resourceType": "Bundle", "type": kind}
    if total is not None:
        head["total"] = total
    head["link"] = links
    return orjson.dumps(head)[:-1]


def searchset(result: SearchResult, base: str, query: list[tuple[str, str]]) -> bytes:
    """The searchset Bundle of a search, built from the stored bytes of each resource."""
    req = result.request
    page = result.page
    count = 0 if req.summary == "count" else req.count  # a count has no pages
    links = _links(base, req.resource_type, query, req.offset, count, len(page.resources), page.total)
    parts = []
    for stored, mode in [(r, b"match") for r in page.resources] + [(r, b"include") for r in result.included]:
        body = resource_bytes(stored, req.summary, req.elements)
        parts.append(b'{"fullUrl":' + orjson.dumps(f"{base}/{stored.type}/{stored.id}") + b',"resource":' + body
                     + b',"search":{"mode":"' + mode + b'"}}')
    if result.request.ignored:
        outcome = {"resourceType": "OperationOutcome", "issue": [
            {"severity": "warning", "code": "not-supported",
             "diagnostics": f"ignored unknown search parameter {name!r}"} for name in result.request.ignored]}
        parts.append(b'{"resource":' + orjson.dumps(outcome) + b',"search":{"mode":"outcome"}}')
    return _bundle_head("searchset", page.total, links) + b',"entry":[' + b",".join(parts) + b"]}"


def history_bundle(page: Page, base: str, type_: str | None, id_: str | None,
                   query: list[tuple[str, str]], offset: int, count: int) -> bytes:
    """The history Bundle: newest version first, deletions with a request and no resource."""
    path_type = f"{type_}/{id_}/_history" if id_ else (f"{type_}/_history" if type_ else "_history")
    links = _links(base, path_type, query, offset, count, len(page.resources), page.total)
    parts = []
    for stored in page.resources:
        url = f"{stored.type}/{stored.id}"
        method = "DELETE" if stored.deleted else ("POST" if stored.method == "POST" else "PUT")
        status = {"POST": "201 Created", "DELETE": "204 No Content"}.get(stored.method, "200 OK")
        entry: dict[str, Any] = {
            "fullUrl": f"{base}/{url}",
            "request": {"method": method, "url": url if method != "POST" else stored.type},
            "response": {"status": status, "etag": stored.etag, "lastModified": stored.last_updated},
        }
        encoded = orjson.dumps(entry)
        if stored.body is not None:
            encoded = encoded[:-1] + b',"resource":' + stored.body + b"}"
        parts.append(encoded)
    return _bundle_head("history", page.total, links) + b',"entry":[' + b",".join(parts) + b"]}"
