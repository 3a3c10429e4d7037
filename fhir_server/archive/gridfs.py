"""The archive in MongoDB, in the GridFS layout (``<kind>.files`` / ``<kind>.chunks``).

Objects are written as GridFS files (255 kB chunks, ``filename`` = key, ``metadata.sha256``), so
standard GridFS tools (``mongofiles``, ``gridfs.GridFSBucket``) can read them; they are written with
plain inserts so that the write takes part in the same session and write concern as the rest of the
store. An index on ``(filename, metadata.sha256)`` makes storing the same bytes again a no-op.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import ASCENDING

from fhir_server.archive.base import Archive, ArchivedObject, QuarantineEntry, digest

CHUNK = 255 * 1024  # the GridFS default chunk size


class GridFsArchive(Archive):
    """Archive of originals in MongoDB."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._ready: set[str] = set()
        self.db["archive_quarantine"].create_index([("kind", ASCENDING), ("key", ASCENDING)], unique=True)

    def _files(self, kind: str) -> Any:
        files = self.db[f"archive_{kind}.files"]
        if kind not in self._ready:
            files.create_index([("filename", ASCENDING), ("metadata.sha256", ASCENDING)], unique=True)
            self.db[f"archive_{kind}.chunks"].create_index([("files_id", ASCENDING), ("n", ASCENDING)],
                                                           unique=True)
            self._ready.add(kind)
        return files

    @staticmethod
    def _record(kind: str, doc: dict[str, Any]) -> ArchivedObject:
        return ArchivedObject(kind, doc["filename"], doc["metadata"]["sha256"], doc["length"],
                              doc["metadata"]["received"])

    def put(self, kind: str, key: str, data: bytes, received: str) -> tuple[ArchivedObject, bool]:
        sha = digest(data)
        files = self._files(kind)
        existing = files.find_one({"filename": key, "metadata.sha256": sha})
        if existing is not None:
            return self._record(kind, existing), False
        file_id = ObjectId()
        chunks = [{"files_id": file_id, "n": n, "data": data[i:i + CHUNK]}
                  for n, i in enumerate(range(0, len(data), CHUNK))] or [{"files_id": file_id, "n": 0, "data": b""}]
        self.db[f"archive_{kind}.chunks"].insert_many(chunks)
        doc = {"_id": file_id, "length": len(data), "chunkSize": CHUNK, "uploadDate": received, "filename": key,
               "metadata": {"sha256": sha, "received": received}}
        files.insert_one(doc)  # the files document last: a crash before it leaves only orphan chunks
        return self._record(kind, doc), True

    def versions(self, kind: str, key: str) -> list[ArchivedObject]:
        docs = self._files(kind).find({"filename": key}).sort([("metadata.received", ASCENDING), ("_id", ASCENDING)])
        return [self._record(kind, d) for d in docs]

    def get(self, kind: str, key: str, sha256: str | None = None) -> bytes | None:
        query: dict[str, Any] = {"filename": key}
        if sha256 is not None:
            query["metadata.sha256"] = sha256
        docs = list(self._files(kind).find(query).sort([("metadata.received", -1), ("_id", -1)]).limit(1))
        if not docs:
            return None
        chunks = self.db[f"archive_{kind}.chunks"].find({"files_id": docs[0]["_id"]}).sort("n", ASCENDING)
        return b"".join(bytes(c["data"]) for c in chunks)

    def keys(self, kind: str) -> list[str]:
        return sorted(self._files(kind).distinct("filename"))

    def quarantine(self, entry: QuarantineEntry) -> None:
        self.db["archive_quarantine"].replace_one(
            {"kind": entry.kind, "key": entry.key},
            {"kind": entry.kind, "key": entry.key, "sha256": entry.sha256, "reason": entry.reason,
             "since": entry.since}, upsert=True)

    def is_quarantined(self, kind: str, key: str) -> bool:
        return self.db["archive_quarantine"].find_one({"kind": kind, "key": key}, {"_id": 1}) is not None

    def release(self, kind: str, key: str) -> None:
        self.db["archive_quarantine"].delete_one({"kind": kind, "key": key})

    def quarantined(self, kind: str | None = None) -> list[QuarantineEntry]:
        query = {"kind": kind} if kind else {}
        docs = self.db["archive_quarantine"].find(query, {"_id": 0}).sort("since", ASCENDING)
        return [QuarantineEntry(**d) for d in docs]
