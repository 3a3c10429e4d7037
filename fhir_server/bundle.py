"""Transaction and batch Bundles (http://hl7.org/fhir/R4/http.html#transaction).

A transaction is all-or-nothing: entries are processed in the order the spec prescribes (DELETE,
POST, PUT/PATCH, then GET), every ``urn:uuid:``/``urn:oid:`` fullUrl and every conditional reference
(``Patient?identifier=…``) is resolved to a real ``Type/id`` before anything is validated, conditional
entries (``ifNoneExist``, ``PUT Type?query``) are evaluated against the committed state, and all writes
are committed together in one :meth:`Store.commit`. A batch runs each entry on its own and reports
each outcome.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from fhir_server.errors import FhirError, PreconditionFailed
from fhir_server.service import FhirService, apply_json_patch, now_instant
from fhir_server.storage.base import StoredResource, Write
from fhir_server.validation import ID_RE, validate_resource_cached

# transform(full_url, stored resource or None, incoming resource) -> resource to write. Lets an
# ingest pipeline merge an update into what is stored (HL7 v2 "empty field = keep") inside the
# transaction, against the same state the conditional match saw.
Transform = Callable[[str | None, dict[str, Any] | None, dict[str, Any]], dict[str, Any]]

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass
class _Entry:
    index: int
    method: str
    type: str
    id: str | None
    query: list[tuple[str, str]]
    url: str
    full_url: str | None
    resource: Any
    request: dict[str, Any]
    # outcome
    target_id: str | None = None
    status: int = 200
    stored: StoredResource | None = None
    write: Write | None = None
    validated: bool = False
    response: dict[str, Any] = field(default_factory=dict)


def _parse_entry(index: int, entry: Any) -> _Entry:
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        raise FhirError(f"Bundle.entry[{index}] has no request")
    request = entry["request"]
    method = str(request.get("method", "")).upper()
    if method not in _ORDER:
        raise FhirError(f"Bundle.entry[{index}].request.method {method!r} is not supported")
    url = str(request.get("url", "")).lstrip("/")
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise FhirError(f"Bundle.entry[{index}].request.url is empty")
    type_ = path[0]
    id_ = path[1] if len(path) > 1 else None
    return _Entry(index, method, type_, id_, parse_qsl(parts.query, keep_blank_values=True), url,
                  entry.get("fullUrl"), entry.get("resource"), request)


def _rewrite(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _rewrite(v, mapping) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v, mapping) for v in node]
    if isinstance(node, str) and node in mapping:
        return mapping[node]
    return node


def _conditional_refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and "?" in value and not value.startswith("#"):
                found.add(value)
            else:
                _conditional_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _conditional_refs(value, found)


class BundleProcessor:
    """Runs transaction and batch Bundles against a :class:`FhirService`."""

    def __init__(self, service: FhirService, transform: Transform | None = None) -> None:
        self.service = service
        self.transform = transform

    def process(self, bundle: Any, *, representation: bool = False) -> dict[str, Any]:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise FhirError("POST to the base URL takes a Bundle of type transaction or batch")
        kind = bundle.get("type")
        entries = bundle.get("entry") or []
        results: list[_Entry | dict[str, Any]]
        if kind == "transaction":
            results = list(self.transaction(entries))
        elif kind == "batch":
            results = self.batch(entries)
        else:
            raise FhirError(f"Bundle.type must be transaction or batch, got {kind!r}")
        return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": f"{kind}-response",
                "entry": [self._response_entry(e, representation) for e in results]}

    # -- transaction ---------------------------------------------------------------------------
    def transaction(self, raw_entries: list[Any], *, prevalidated: bool = False) -> list[_Entry]:
        """Run a transaction. ``prevalidated``: the caller validated every entry's resource (an ingest
        pipeline that maps and validates in a worker process); it is not validated again."""
        entries = [_parse_entry(i, e) for i, e in enumerate(raw_entries)]
        # Validation is pure and the costliest step: done before taking the write lock, so that other
        # writers (other associations, connections) are not held up by it.
        for e in entries:
            if e.method in ("POST", "PUT") and isinstance(e.resource, dict):
                if prevalidated:
                    e.validated = True
                    continue
                try:
                    validate_resource_cached(e.resource, e.type)
                except FhirError as exc:
                    exc.diagnostics = f"Bundle.entry[{e.index}] ({e.method} {e.url}): {exc.diagnostics}"
                    raise
                e.validated = True
        with self.service.store.lock:
            now = now_instant()
            self._assign_ids(entries)
            mapping = {e.full_url: f"{e.type}/{e.target_id}" for e in entries
                       if e.full_url and e.target_id and e.method in ("POST", "PUT")}
            conditional: set[str] = set()
            for e in entries:
                _conditional_refs(e.resource, conditional)
            for ref in conditional:
                mapping[ref] = self._resolve_conditional_reference(ref)
            writes: list[Write] = []
            touched: set[tuple[str, str]] = set()
            for e in sorted(entries, key=lambda x: _ORDER[x.method]):
                if e.method in ("GET", "HEAD"):
                    continue
                if e.resource is not None:
                    e.resource = _rewrite(e.resource, mapping)
                try:
                    write = self._prepare(e, now)
                except FhirError as exc:
                    exc.diagnostics = f"Bundle.entry[{e.index}] ({e.method} {e.url}): {exc.diagnostics}"
                    raise
                if write is None:
                    continue
                key = (write.type, write.id)
                if key in touched:
                    raise FhirError(f"Bundle.entry[{e.index}] writes {write.type}/{write.id} a second time "
                                    "in the same transaction")
                touched.add(key)
                writes.append(write)
                e.write = write
            self.service.store.commit(writes)
        for e in entries:
            if e.write is not None:
                w = e.write
                e.stored = StoredResource(w.type, w.id, w.version, w.last_updated, w.deleted, w.body, w.method)
        for e in entries:
            if e.method in ("GET", "HEAD"):
                self._read(e)
        return list(entries)

    def _assign_ids(self, entries: list[_Entry]) -> None:
        for e in entries:
            if e.method == "POST":
                if e.id is not None:
                    raise FhirError(f"Bundle.entry[{e.index}]: POST goes to a type URL, not {e.url}")
                existing = None
                criteria = e.request.get("ifNoneExist")
                if criteria:
                    found = self.service.find(e.type, parse_qsl(criteria.lstrip("?"), keep_blank_values=True))
                    if len(found) > 1:
                        raise PreconditionFailed(f"Bundle.entry[{e.index}] ifNoneExist matches {len(found)} "
                                                 f"{e.type} resources")
                    existing = found[0] if found else None
                if existing is not None:
                    e.target_id, e.stored, e.status = existing.id, existing, 200
                else:
                    e.target_id, e.status = str(uuid.uuid4()), 201
            elif e.method in ("PUT", "PATCH", "DELETE"):
                if e.id is not None:
                    if not ID_RE.match(e.id):
                        raise FhirError(f"Bundle.entry[{e.index}]: invalid id in {e.url}")
                    e.target_id = e.id
                elif e.query:
                    found = self.service.find(e.type, e.query)
                    if len(found) > 1:
                        raise PreconditionFailed(f"Bundle.entry[{e.index}] {e.method} {e.url} matches "
                                                 f"{len(found)} resources")
                    if found:
                        e.target_id = found[0].id
                    elif e.method == "PUT":
                        given = e.resource.get("id") if isinstance(e.resource, dict) else None
                        e.target_id = given or str(uuid.uuid4())
                    elif e.method == "PATCH":
                        raise PreconditionFailed(f"Bundle.entry[{e.index}] PATCH {e.url} matches nothing")
                else:
                    raise FhirError(f"Bundle.entry[{e.index}]: {e.method} needs an id or search criteria")

    def _resolve_conditional_reference(self, ref: str) -> str:
        type_, _, query = ref.partition("?")
        found = self.service.find(type_, parse_qsl(query, keep_blank_values=True))
        if len(found) != 1:
            raise PreconditionFailed(f"conditional reference {ref!r} matches {len(found)} resources, not one")
        return f"{type_}/{found[0].id}"

    def _prepare(self, e: _Entry, now: str) -> Write | None:
        service = self.service
        if e.method == "POST":
            if e.stored is not None:  # ifNoneExist matched: nothing to write
                return None
            if not isinstance(e.resource, dict):
                raise FhirError("POST entry has no resource")
            return service.prepare(e.type, e.target_id or "", e.resource, "POST", None, now, validated=e.validated)
        if e.target_id is None:  # conditional DELETE with no match
            e.status = 204
            return None
        current = service.store.read(e.type, e.target_id)
        service.check_if_match(current, e.request.get("ifMatch"))
        if e.method == "DELETE":
            e.status = 204
            if current is None or current.deleted:
                return None
            return service.prepare_delete(current, now)
        if e.method == "PATCH":
            if current is None or current.deleted:
                raise FhirError(f"{e.type}/{e.target_id} does not exist", status=404, code="not-found")
            patched = apply_json_patch(current.resource(), _patch_body(e.resource))
            e.status = 200
            return service.prepare(e.type, e.target_id, patched, "PATCH", current, now)
        if not isinstance(e.resource, dict):
            raise FhirError("PUT entry has no resource")
        if e.resource.get("id") not in (None, e.target_id):
            raise FhirError(f"resource id {e.resource.get('id')!r} does not match {e.type}/{e.target_id}")
        live = current is not None and not current.deleted
        resource = e.resource
        if self.transform is not None:
            resource = self.transform(e.full_url, current.resource() if live and current else None, resource)
        e.status = 200 if live else 201
        if live and service.unchanged(current, resource):
            e.stored = current  # no-op update: no new version
            return None
        # a transform that changed nothing (a merge into nothing stored) needs no second validation
        return service.prepare(e.type, e.target_id, resource, "PUT", current, now,
                               validated=e.validated and (resource is e.resource or resource == e.resource))

    def _read(self, e: _Entry) -> None:
        if e.id is not None:
            e.stored = self.service.read(e.type, e.id)
        else:
            result = self.service.search(e.type, e.query)
            e.response = {"resource": {
                "resourceType": "Bundle", "type": "searchset", "total": result.page.total,
                "entry": [{"fullUrl": f"{r.type}/{r.id}", "resource": r.resource(), "search": {"mode": "match"}}
                          for r in result.page.resources]}}
        e.status = 200

    # -- batch ---------------------------------------------------------------------------------
    def batch(self, raw_entries: list[Any]) -> list[_Entry | dict[str, Any]]:
        results: list[_Entry | dict[str, Any]] = []
        for index, raw in enumerate(raw_entries):
            try:
                entry = self.transaction([raw])[0]
                entry.index = index
                results.append(entry)
            except FhirError as exc:
                results.append({"response": {"status": f"{exc.status}", "outcome": exc.outcome()}})
        return results

    @staticmethod
    def _response_entry(e: _Entry | dict[str, Any], representation: bool) -> dict[str, Any]:
        if isinstance(e, dict):
            return e
        response: dict[str, Any] = {"status": STATUS_TEXT.get(e.status, str(e.status))}
        out: dict[str, Any] = {"response": response}
        stored = e.stored
        if stored is not None and not stored.deleted:
            out["fullUrl"] = f"{stored.type}/{stored.id}"
            response["location"] = f"{stored.type}/{stored.id}/_history/{stored.version}"
            response["etag"] = stored.etag
            response["lastModified"] = stored.last_updated
            if representation or e.method == "GET":
                out["resource"] = stored.resource()
        if "resource" in e.response:
            out["resource"] = e.response["resource"]
        return out


def _patch_body(resource: Any) -> Any:
    """The JSON Patch carried in a transaction entry (a Binary with ``application/json-patch+json``)."""
    if isinstance(resource, dict) and resource.get("resourceType") == "Binary":
        try:
            return orjson.loads(base64.b64decode(resource.get("data", "")))
        except (ValueError, orjson.JSONDecodeError):
            raise FhirError("the PATCH entry's Binary does not hold a JSON Patch document") from None
    if isinstance(resource, list):
        return resource
    raise FhirError("a PATCH entry carries its JSON Patch as a Binary resource (application/json-patch+json)")
