"""Storage backends behind one interface (:class:`~fhir_server.storage.base.Store`)."""

from __future__ import annotations

from urllib.parse import urlparse

from fhir_server.storage.base import LoggedMessage, Page, Store, StoredResource, VersionConflict, Write

__all__ = ["LoggedMessage", "Page", "Store", "StoredResource", "VersionConflict", "Write", "open_store"]


def open_store(url: str) -> Store:
    """Open the store named by ``url``: ``sqlite:///path``, ``mongodb://host/db`` (or ``mongodb+srv``).

    ``mongomock://anything/db`` runs the MongoDB backend on mongomock (tests and demos only).
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        from fhir_server.storage.sqlite import SQLiteStore

        # sqlite:///relative/path or sqlite:////absolute/path, as in SQLAlchemy URLs
        return SQLiteStore(url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path)
    if parsed.scheme in ("mongodb", "mongodb+srv", "mongomock"):
        from fhir_server.storage.mongo import MongoStore

        database = parsed.path.lstrip("/") or "dacs"
        if parsed.scheme == "mongomock":
            import mongomock

            return MongoStore(mongomock.MongoClient(), database)
        import pymongo

        return MongoStore(pymongo.MongoClient(url), database)
    raise ValueError(f"unsupported store URL {url!r}: use sqlite:///path or mongodb://host/db")
