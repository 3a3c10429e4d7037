"""The MongoDB store: for deployments and the national registry.

One collection per resource type holds the current version of each resource (``_id`` is the
resource id; ``r`` the resource as a document; ``_i`` its search-index entries, see
:mod:`fhir_server.search.index`; ``_srt`` the sort keys per parameter), and one ``history`` collection
holds every version. Searches are ``$elemMatch`` filters on ``_i`` served by compound multikey indexes
on ``(_i.p, _i.k, _i.s)``, ``(_i.p, _i.lo)`` and ``(_i.p, _i.t)``. Sorting uses MongoDB's array rule:
an ascending sort compares an array's smallest element and a descending sort its largest, which is
FHIR's rule for multi-valued parameters.

A write that touches several documents (the resource, its history, every entry of a transaction
Bundle) runs in a multi-document transaction when the server supports them (replica set or sharded
cluster); MongoDB has no savepoints, so :meth:`Store.transaction` only holds the lock here and each
commit inside stays its own transaction. A standalone server has no transactions: all checks are
done before the first write, but a crash between two writes of one commit can leave part of it; run
a replica set (a single-node one is enough) in production. The ``messages`` collection is the HL7 v2
message log. Writes use write concern ``majority`` with journaling, so an acknowledged
write survives a crash.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pymongo
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.write_concern import WriteConcern

from fhir_server.definitions import SERVED_TYPES
from fhir_server.search.filters import (
    AllConds,
    AnyConds,
    CondExpr,
    Exists,
    Filter,
    Match,
    Not,
    Nothing,
    Or,
    SortKey,
)
from fhir_server.search.filters import And as AndFilter
from fhir_server.search.index import IndexEntry
from fhir_server.storage.base import LoggedMessage, Page, Store, StoredResource, VersionConflict, Write

_MAX_CHAR = "\U0010ffff"
_MONGO_OPS = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}


def _merge(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """AND of field conditions as one document (``{lo: {$gte: a}, hi: {$lte: b}}``), None if they clash."""
    merged: dict[str, Any] = {}
    for doc in docs:
        for field, condition in doc.items():
            if field.startswith("$"):
                return None
            if field not in merged:
                merged[field] = condition
            elif isinstance(merged[field], dict) and isinstance(condition, dict) and \
                    not set(merged[field]) & set(condition):
                merged[field] = {**merged[field], **condition}
            else:
                return None
    return merged


def _cond_doc(cond: CondExpr) -> dict[str, Any]:
    if isinstance(cond, AllConds):
        parts = [_cond_doc(c) for c in cond.parts]
        return _merge(parts) or {"$and": parts}
    if isinstance(cond, AnyConds):
        return {"$or": [_cond_doc(c) for c in cond.parts]}
    col, op, value = cond.column, cond.op, cond.value
    if op == "eq":
        return {col: value}
    if op == "null":
        return {col: None}
    if op == "prefix":
        return {col: {"$gte": value, "$lt": f"{value}{_MAX_CHAR}"}}
    if op == "contains":
        return {col: {"$regex": re.escape(str(value))}}
    if op == "in":
        return {col: {"$in": list(value)}}  # type: ignore[call-overload]
    return {col: {_MONGO_OPS[op]: value}}


def compile_filter(f: Filter) -> dict[str, Any]:
    """The MongoDB filter document for a filter tree (values are BSON values, never operators)."""
    if isinstance(f, Match):
        element: dict[str, Any] = {"p": f.p}
        if f.cond is not None:
            element.update(_cond_doc(f.cond))
        return {"_i": {"$elemMatch": element}}
    if isinstance(f, Exists):
        return {"_i": {"$elemMatch": {"p": f.p}}}
    if isinstance(f, Not):
        return {"$nor": [compile_filter(f.part)]}
    if isinstance(f, Or):
        return {"$or": [compile_filter(p) for p in f.parts]}
    if isinstance(f, AndFilter):
        return {"$and": [compile_filter(p) for p in f.parts]}
    if isinstance(f, Nothing):
        return {"_id": {"$in": []}}
    raise TypeError(f)


def _sort_spec(sort: tuple[SortKey, ...]) -> list[tuple[str, int]]:
    spec = []
    for key in sort:
        direction = pymongo.DESCENDING if key.descending else pymongo.ASCENDING
        field = {"_id": "_id", "_lastUpdated": "lu"}.get(key.p, f"_srt.{key.p}")
        spec.append((field, direction))
    if not any(field == "_id" for field, _ in spec):
        spec.append(("_id", pymongo.ASCENDING))
    return spec


def _entry_doc(e: IndexEntry) -> dict[str, Any]:
    return {name: value for name, value in e._asdict().items() if value is not None}


def _sort_keys(entries: list[IndexEntry]) -> dict[str, list]:
    keys: dict[str, list] = {}
    for e in entries:
        if e.lo is not None or e.hi is not None:
            keys.setdefault(e.p, []).extend(v for v in (e.lo, e.hi) if v is not None)
        elif e.k is not None:
            keys.setdefault(e.p, []).append(e.k)
    return keys


class MongoStore(Store):
    """MongoDB implementation of :class:`~fhir_server.storage.base.Store`."""

    def __init__(self, client: Any, database: str) -> None:
        super().__init__()
        self.client = client
        self.db = client.get_database(database, write_concern=WriteConcern(w="majority", j=True))
        self.transactions = self._supports_transactions()
        self._ensure_indexes()

    def _supports_transactions(self) -> bool:
        try:
            hello = self.client.admin.command("hello")
        except (OperationFailure, NotImplementedError, AttributeError, TypeError):
            return False
        return "setName" in hello or hello.get("msg") == "isdbgrid"

    def _ensure_indexes(self) -> None:
        for t in SERVED_TYPES:
            coll = self.db[t]
            coll.create_index([("_i.p", 1), ("_i.k", 1), ("_i.s", 1)], name="idx_pk")
            coll.create_index([("_i.p", 1), ("_i.lo", 1)], name="idx_lo")
            coll.create_index([("_i.p", 1), ("_i.t", 1)], name="idx_t")
            coll.create_index([("lu", 1)], name="lu")
        hist = self.db["history"]
        hist.create_index([("type", 1), ("id", 1), ("v", -1)], name="type_id_v", unique=True)
        hist.create_index([("lu", -1)], name="lu")
        hist.create_index([("type", 1), ("lu", -1)], name="type_lu")
        self.db["messages"].create_index([("kind", 1), ("key", 1), ("received", -1), ("_id", -1)], name="kind_key")

    @staticmethod
    def _stored(type_: str, doc: dict[str, Any], method: str = "PUT") -> StoredResource:
        body = None if doc.get("r") is None else orjson.dumps(doc["r"])
        return StoredResource(type_, doc["id"] if "id" in doc else doc["_id"], doc["v"], doc["lu"],
                              bool(doc["del"]), body, doc.get("m", method))

    def read(self, type_: str, id_: str) -> StoredResource | None:
        self.check_type(type_)
        doc = self.db[type_].find_one({"_id": id_}, {"_i": 0, "_srt": 0})
        return None if doc is None else self._stored(type_, doc)

    def vread(self, type_: str, id_: str, version: int) -> StoredResource | None:
        doc = self.db["history"].find_one({"type": type_, "id": id_, "v": version})
        return None if doc is None else self._stored(type_, doc)

    def history(self, type_: str | None, id_: str | None, *, since: str | None, count: int,
                offset: int) -> Page:
        query: dict[str, Any] = {}
        if type_ is not None:
            query["type"] = type_
        if id_ is not None:
            query["id"] = id_
        if since is not None:
            query["lu"] = {"$gte": since}
        hist = self.db["history"]
        total = hist.count_documents(query)
        docs = hist.find(query).sort([("lu", -1), ("v", -1)]).skip(offset).limit(count) if count else []
        return Page([self._stored(d["type"], d) for d in docs], total)

    def search(self, type_: str, filter_: Filter | None, sort: tuple[SortKey, ...], *, count: int,
               offset: int, total: bool) -> Page:
        self.check_type(type_)
        query: dict[str, Any] = {"del": False}
        if filter_ is not None:
            query = {"$and": [query, compile_filter(filter_)]}
        coll = self.db[type_]
        docs: list = []
        if count > 0:
            cursor = coll.find(query, {"_i": 0, "_srt": 0}).sort(_sort_spec(sort)).skip(offset).limit(count)
            docs = list(cursor)
        matched = None
        if total:
            if 0 < len(docs) < count or (offset == 0 and count > 0 and len(docs) < count):
                matched = offset + len(docs)  # the last page tells the total: no second query
            else:
                matched = coll.count_documents(query)
        return Page([self._stored(type_, d) for d in docs], matched)

    def read_many(self, type_: str, ids: list[str]) -> list[StoredResource]:
        self.check_type(type_)
        docs = self.db[type_].find({"_id": {"$in": list(ids)}, "del": False}, {"_i": 0, "_srt": 0})
        return [self._stored(type_, d) for d in docs]

    def commit(self, writes: list[Write]) -> None:
        with self.lock:
            if self.transactions:
                with self.client.start_session() as session:
                    session.with_transaction(lambda s: self._apply_all(writes, s))
            else:
                self._apply_all(writes, None)

    def _apply_all(self, writes: list[Write], session: Any) -> None:
        for w in writes:  # check every expectation before the first write
            self.check_type(w.type)
            doc = self.db[w.type].find_one({"_id": w.id}, {"v": 1}, session=session)
            current = None if doc is None else doc["v"]
            if current != w.expected_version:
                raise VersionConflict(f"{w.type}/{w.id} is at version {current}, expected "
                                      f"{w.expected_version}: changed concurrently")
        for w in writes:
            doc = {"_id": w.id, "v": w.version, "lu": w.last_updated, "del": w.deleted, "r": w.resource,
                   "_i": [] if w.deleted else [_entry_doc(e) for e in w.entries],
                   "_srt": {} if w.deleted else _sort_keys(w.entries)}
            coll = self.db[w.type]
            try:
                if w.expected_version is None:
                    coll.insert_one(doc, session=session)
                else:
                    result = coll.replace_one({"_id": w.id, "v": w.expected_version}, doc, session=session)
                    if result.matched_count != 1:
                        raise VersionConflict(f"{w.type}/{w.id} changed concurrently")
            except DuplicateKeyError:
                raise VersionConflict(f"{w.type}/{w.id} was created concurrently") from None
            self.db["history"].insert_one(
                {"_id": f"{w.type}/{w.id}/{w.version}", "type": w.type, "id": w.id, "v": w.version,
                 "lu": w.last_updated, "m": w.method, "del": w.deleted, "r": w.resource}, session=session)

    def log_message(self, message: LoggedMessage) -> None:
        self.db["messages"].insert_one(
            {"kind": message.kind, "key": message.key, "received": message.received, "sha256": message.sha256,
             "outcome": message.outcome, "message": message.message, "reply": message.reply})

    def last_message(self, kind: str, key: str) -> LoggedMessage | None:
        doc = self.db["messages"].find_one({"kind": kind, "key": key}, sort=[("received", -1), ("_id", -1)])
        if doc is None:
            return None
        reply = doc.get("reply")
        return LoggedMessage(kind, key, doc["received"], doc["sha256"], doc["outcome"], bytes(doc["message"]),
                             None if reply is None else bytes(reply))

    def close(self) -> None:
        self.client.close()
