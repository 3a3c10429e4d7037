"""FHIR interactions, independent of HTTP: what the REST routes, the Bundle processor and the
ingest pipeline all call.

Every write is prepared here — id, ``meta.versionId``, ``meta.lastUpdated``, validation, search-index
entries — against the committed state, under the store's write lock, and then committed in one
atomic :meth:`Store.commit`. Nothing is written before everything has been checked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonpatch
import orjson

from fhir_server.errors import FhirError, Gone, NotFound, PreconditionFailed
from fhir_server.search.filters import And, Cond, Filter, Match
from fhir_server.search.index import index_entries
from fhir_server.search.plan import plan_clause
from fhir_server.search.registry import is_served, params_for
from fhir_server.search.request import Include, SearchRequest, parse_search
from fhir_server.search.values import BadValue, date_range
from fhir_server.settings import Settings
from fhir_server.storage.base import Page, Store, StoredResource, Write
from fhir_server.validation import validate_resource

MAX_INCLUDE = 1000
MAX_ITERATE_DEPTH = 4


def now_instant() -> str:
    """The current time as a FHIR instant in UTC with microseconds (sortable as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_instant(text: str) -> str:
    """A client-supplied date/instant (``_since``) in the stored, sortable UTC form."""
    try:
        exact = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if exact.tzinfo is not None:
            return exact.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        pass
    try:
        lo, _ = date_range(text)
    except BadValue as exc:
        raise FhirError(f"invalid instant {text!r}: {exc}") from None
    return datetime.fromtimestamp(lo / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_etag(value: str) -> int:
    """The version in an ``If-Match`` ETag (``W/"3"`` or ``"3"``)."""
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise FhirError(f"If-Match {value!r} is not a version ETag like W/\"3\"")
    return int(text)


@dataclass
class WriteResult:
    """What a write interaction did: the stored version and the HTTP status it deserves."""

    stored: StoredResource
    status: int  # 200 updated / existing, 201 created
    written: bool = True  # False: an identical update, no new version


@dataclass
class SearchResult:
    request: SearchRequest
    page: Page
    included: list[StoredResource] = field(default_factory=list)


class FhirService:
    """The FHIR interactions over one :class:`Store`."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # -- reads ---------------------------------------------------------------------------------
    def read(self, type_: str, id_: str) -> StoredResource:
        stored = self.store.read(type_, id_)
        if stored is None:
            raise NotFound(f"{type_}/{id_} is not known")
        if stored.deleted:
            raise Gone(f"{type_}/{id_} was deleted (version {stored.version})")
        return stored

    def vread(self, type_: str, id_: str, version: str) -> StoredResource:
        if not version.isdigit():
            raise NotFound(f"{type_}/{id_} has no version {version!r}")
        stored = self.store.vread(type_, id_, int(version))
        if stored is None:
            raise NotFound(f"{type_}/{id_} has no version {version}")
        if stored.deleted:
            raise Gone(f"version {version} of {type_}/{id_} is a deletion")
        return stored

    def history(self, type_: str | None, id_: str | None, query: dict[str, str]) -> Page:
        count = min(int(query.get("_count", self.settings.default_count)), self.settings.max_count)
        offset = int(query.get("_offset", 0))
        since = to_instant(query["_since"]) if "_since" in query else None
        if id_ is not None and type_ is not None and self.store.read(type_, id_) is None:
            raise NotFound(f"{type_}/{id_} is not known")
        return self.store.history(type_, id_, since=since, count=count, offset=offset)

    # -- search --------------------------------------------------------------------------------
    def plan(self, request: SearchRequest, base_url: str = "") -> Filter | None:
        filters = [plan_clause(c, self._resolve, base_url=base_url,
                               max_matches=self.settings.max_chain_matches) for c in request.clauses]
        if not filters:
            return None
        return filters[0] if len(filters) == 1 else And(tuple(filters))

    def _resolve(self, type_: str, filter_: Filter, limit: int) -> list[tuple[str, dict]]:
        page = self.store.search(type_, filter_, (), count=limit, offset=0, total=False)
        return [(r.id, r.resource()) for r in page.resources]

    def search(self, type_: str, query: list[tuple[str, str]], *, lenient: bool = False,
               base_url: str = "") -> SearchResult:
        request = parse_search(type_, query, lenient=lenient, default_count=self.settings.default_count,
                               max_count=self.settings.max_count)
        filter_ = self.plan(request, base_url)
        count_only = request.summary == "count"
        page = self.store.search(type_, filter_, request.sort, count=0 if count_only else request.count,
                                 offset=request.offset, total=request.total == "accurate" or count_only)
        included = [] if count_only else self._includes(request, page.resources)
        return SearchResult(request, page, included)

    def find(self, type_: str, query: list[tuple[str, str]], limit: int = 2) -> list[StoredResource]:
        """Resources matching a conditional-interaction query (at most ``limit``)."""
        if not query:
            raise PreconditionFailed(f"a conditional interaction on {type_} needs search criteria")
        request = parse_search(type_, query)
        page = self.store.search(type_, self.plan(request), (), count=limit, offset=0, total=False)
        return page.resources

    def _includes(self, request: SearchRequest, matches: list[StoredResource]) -> list[StoredResource]:
        seen = {(r.type, r.id) for r in matches}
        included: list[StoredResource] = []
        frontier = list(matches)
        for depth in range(MAX_ITERATE_DEPTH):
            found: list[StoredResource] = []
            for inc in request.includes:
                if depth == 0 or inc.iterate:
                    found.extend(self._forward(inc, frontier))
            for inc in request.revincludes:
                if depth == 0 or inc.iterate:
                    found.extend(self._reverse(inc, frontier))
            fresh = []
            for r in found:
                if (r.type, r.id) not in seen and len(included) < MAX_INCLUDE:
                    seen.add((r.type, r.id))
                    fresh.append(r)
            included.extend(fresh)
            if not fresh or not any(i.iterate for i in (*request.includes, *request.revincludes)):
                break
            frontier = fresh
        return included

    def _forward(self, inc: Include, sources: Iterable[StoredResource]) -> list[StoredResource]:
        wanted: dict[str, set[str]] = {}
        for src in sources:
            if src.type != inc.source_type:
                continue
            params = params_for(src.type)
            chosen = [p for p in params.values() if p.type == "reference"] if inc.param == "*" \
                else [params[inc.param]]
            resource = src.resource()
            for param in chosen:
                for value, _ in param.evaluate(resource):
                    ref = value.get("reference") if isinstance(value, dict) else None
                    if not isinstance(ref, str) or "/" not in ref or ref.startswith(("#", "urn:")):
                        continue
                    type_name, _, rid = ref.split("/_history/")[0].rpartition("/")
                    type_name = type_name.rpartition("/")[2]
                    if inc.target_type in (None, type_name) and is_served(type_name):
                        wanted.setdefault(type_name, set()).add(rid)
        out: list[StoredResource] = []
        for type_name, ids in wanted.items():
            out.extend(self.store.read_many(type_name, sorted(ids)))
        return out

    def _reverse(self, inc: Include, targets: Iterable[StoredResource]) -> list[StoredResource]:
        refs = tuple(f"{t.type}/{t.id}" for t in targets if inc.target_type in (None, t.type))
        if not refs:
            return []
        params = params_for(inc.source_type)
        codes = [p.code for p in params.values() if p.type == "reference"] if inc.param == "*" else [inc.param]
        out: list[StoredResource] = []
        for code in codes:
            page = self.store.search(inc.source_type, Match(code, Cond("k", "in", refs)), (),
                                     count=MAX_INCLUDE, offset=0, total=False)
            out.extend(page.resources)
        return out

    # -- writes --------------------------------------------------------------------------------
    def prepare(self, type_: str, id_: str, resource: dict[str, Any], method: str,
                current: StoredResource | None, now: str, *, validated: bool = False) -> Write:
        """Validate ``resource`` and build the Write that makes it the next version of ``type_/id_``.

        ``validated``: the caller already validated this content (before taking the write lock) and
        changed nothing since but references resolved to ``Type/id``; it is not validated twice.
        """
        resource = dict(resource)
        resource["id"] = id_
        version = 1 if current is None else current.version + 1
        meta = dict(resource.get("meta") or {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = now
        resource["meta"] = meta
        if not validated:
            validate_resource(resource, type_)
        return Write(type_, id_, version, now, method, resource, orjson.dumps(resource),
                     index_entries(resource), None if current is None else current.version)

    @staticmethod
    def unchanged(current: StoredResource | None, resource: dict[str, Any]) -> bool:
        """True when ``resource`` equals the live current version apart from ``meta`` versioning.

        Such an update is a no-op (no new version), which makes re-sent and re-mapped inputs idempotent.
        """
        if current is None or current.deleted:
            return False
        stored = current.resource()
        incoming = dict(resource)
        incoming["id"] = current.id
        for body in (stored, incoming):
            meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
            if meta:
                body["meta"] = meta
            else:
                body.pop("meta", None)
        return stored == incoming

    def prepare_delete(self, current: StoredResource, now: str) -> Write:
        return Write(current.type, current.id, current.version + 1, now, "DELETE", None, None, [],
                     current.version)

    @staticmethod
    def check_if_match(current: StoredResource | None, if_match: str | None) -> None:
        if if_match is None:
            return
        wanted = parse_etag(if_match)
        if current is None or current.deleted or current.version != wanted:
            have = "no current version" if current is None or current.deleted else f'W/"{current.version}"'
            raise PreconditionFailed(f"If-Match {if_match} does not match the current version ({have})")

    def _commit_one(self, write: Write) -> StoredResource:
        self.store.commit([write])
        return StoredResource(write.type, write.id, write.version, write.last_updated, write.deleted,
                              write.body, write.method)

    def create(self, type_: str, resource: dict[str, Any], *,
               if_none_exist: list[tuple[str, str]] | None = None) -> WriteResult:
        validate_resource(resource, type_)
        with self.store.lock:
            if if_none_exist:
                found = self.find(type_, if_none_exist)
                if len(found) > 1:
                    raise PreconditionFailed(f"If-None-Exist matches {len(found)} {type_} resources")
                if found:
                    return WriteResult(found[0], 200)
            write = self.prepare(type_, str(uuid.uuid4()), resource, "POST", None, now_instant(), validated=True)
            return WriteResult(self._commit_one(write), 201)

    def update(self, type_: str, id_: str, resource: dict[str, Any], *, if_match: str | None = None) -> WriteResult:
        validate_resource(resource, type_)
        if resource.get("id") != id_:
            raise FhirError(f"the resource id {resource.get('id')!r} does not match the URL id {id_!r}")
        return self._put(type_, id_, resource, if_match)

    def _put(self, type_: str, id_: str, resource: dict[str, Any], if_match: str | None) -> WriteResult:
        """Make a validated ``resource`` the current version of ``type_/id_`` (unless it is unchanged)."""
        with self.store.lock:
            current = self.store.read(type_, id_)
            self.check_if_match(current, if_match)
            if current is not None and self.unchanged(current, resource):
                return WriteResult(current, 200, written=False)
            write = self.prepare(type_, id_, resource, "PUT", current, now_instant(), validated=True)
            return WriteResult(self._commit_one(write), 201 if current is None or current.deleted else 200)

    def conditional_update(self, type_: str, query: list[tuple[str, str]], resource: dict[str, Any], *,
                           if_match: str | None = None) -> WriteResult:
        validate_resource(resource, type_)
        with self.store.lock:
            found = self.find(type_, query)
            if len(found) > 1:
                raise PreconditionFailed(f"conditional update matches {len(found)} {type_} resources")
            if found:
                id_ = found[0].id
                if resource.get("id") not in (None, id_):
                    raise FhirError(f"the resource id {resource['id']!r} differs from the matched {type_}/{id_}")
                return self._put(type_, id_, {**resource, "id": id_}, if_match)
            id_ = resource.get("id") or str(uuid.uuid4())
            if self.store.read(type_, id_) is not None:
                raise FhirError(f"{type_}/{id_} exists but does not match the conditional update criteria",
                                status=409, code="conflict")
            return self._put(type_, id_, {**resource, "id": id_}, if_match)

    def patch(self, type_: str, id_: str, patch: Any, *, if_match: str | None = None) -> WriteResult:
        with self.store.lock:
            current = self.read(type_, id_)
            self.check_if_match(current, if_match)
            patched = apply_json_patch(current.resource(), patch)
            if patched.get("resourceType") != type_ or patched.get("id") != id_:
                raise FhirError("a patch may not change resourceType or id", status=422, code="processing")
            write = self.prepare(type_, id_, patched, "PATCH", current, now_instant())
            return WriteResult(self._commit_one(write), 200)

    def conditional_patch(self, type_: str, query: list[tuple[str, str]], patch: Any, *,
                          if_match: str | None = None) -> WriteResult:
        with self.store.lock:
            found = self.find(type_, query)
            if len(found) != 1:
                raise PreconditionFailed(f"conditional patch needs exactly one match, found {len(found)}")
            return self.patch(type_, found[0].id, patch, if_match=if_match)

    def delete(self, type_: str, id_: str, *, if_match: str | None = None) -> StoredResource | None:
        with self.store.lock:
            current = self.store.read(type_, id_)
            self.check_if_match(current, if_match)
            if current is None or current.deleted:
                return None  # deleting what is not there is not an error (idempotent, 204)
            return self._commit_one(self.prepare_delete(current, now_instant()))

    def conditional_delete(self, type_: str, query: list[tuple[str, str]]) -> StoredResource | None:
        with self.store.lock:
            found = self.find(type_, query)
            if len(found) > 1:
                raise PreconditionFailed(f"conditional delete matches {len(found)} {type_} resources; "
                                         "narrow the criteria")
            return self.delete(type_, found[0].id) if found else None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch (what fhirpy and several clients send as a JSON object)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_json_patch(resource: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a patch: a JSON array is an RFC 6902 JSON Patch, a JSON object an RFC 7396 merge patch.

    Failures become 422 OperationOutcomes (http://hl7.org/fhir/R4/http.html#patch).
    """
    if isinstance(patch, dict):
        return merge_patch(resource, patch)
    if not isinstance(patch, list):
        raise FhirError("a patch body is a JSON Patch array or a JSON merge-patch object")
    try:
        return jsonpatch.apply_patch(resource, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise FhirError(f"the JSON Patch cannot be applied: {exc}", status=422, code="processing") from None
