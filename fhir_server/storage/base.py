"""The storage interface every backend implements, and the records that cross it.

Resources are versioned: every write adds a version to the history and replaces the current version;
a delete writes a tombstone version. The service layer (``fhir_server.service``) decides *what* to
write — ids, versions, ``meta``, index entries — against the committed state, then hands the whole
set to :meth:`Store.commit`, which applies it atomically or not at all (optimistic concurrency on
``expected_version``). Write interactions are serialised per process by :attr:`Store.lock`, which makes
conditional create/update race-free within one server process.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_server.definitions import SERVED_TYPES
from fhir_server.errors import Conflict
from fhir_server.search.filters import Filter, SortKey
from fhir_server.search.index import IndexEntry


@dataclass(frozen=True)
class StoredResource:
    """One version of a resource as stored: the JSON bytes are served as they are."""

    type: str
    id: str
    version: int
    last_updated: str
    deleted: bool
    body: bytes | None
    method: str = "PUT"

    def resource(self) -> dict[str, Any]:
        """The resource as a dict (parsed from the stored JSON)."""
        if self.body is None:
            raise ValueError(f"{self.type}/{self.id} version {self.version} is a deletion")
        return orjson.loads(self.body)

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass(frozen=True)
class Write:
    """One version to add. ``expected_version`` is the current version (None: must not exist yet)."""

    type: str
    id: str
    version: int
    last_updated: str
    method: str
    resource: dict[str, Any] | None
    body: bytes | None
    entries: list[IndexEntry] = field(default_factory=list)
    expected_version: int | None = None

    @property
    def deleted(self) -> bool:
        return self.resource is None


@dataclass(frozen=True)
class Page:
    """One page of search results and the total number of matches (None when not counted)."""

    resources: list[StoredResource]
    total: int | None


@dataclass(frozen=True)
class LoggedMessage:
    """A received message kept verbatim with the reply it got (the HL7 v2 message log).

    ``outcome`` says what happened (for HL7 v2: ``accept``, ``error`` or ``reject``); ``reply`` is None
    when no reply was sent (an enhanced-mode message that asked for none).
    """

    kind: str
    key: str
    received: str
    sha256: str
    outcome: str
    message: bytes
    reply: bytes | None


class VersionConflict(Conflict):
    """Someone else wrote the resource between the read and the commit."""


class Store(ABC):
    """Persistent, versioned FHIR resources with a search index."""

    def __init__(self) -> None:
        self.lock = threading.RLock()

    @abstractmethod
    def read(self, type_: str, id_: str) -> StoredResource | None:
        """The current version (a tombstone if deleted), or None if never written."""

    @abstractmethod
    def vread(self, type_: str, id_: str, version: int) -> StoredResource | None:
        """One version, or None."""

    @abstractmethod
    def history(self, type_: str | None, id_: str | None, *, since: str | None, count: int,
                offset: int) -> Page:
        """Versions newest first, for one resource, one type, or the whole system."""

    @abstractmethod
    def search(self, type_: str, filter_: Filter | None, sort: tuple[SortKey, ...], *, count: int,
               offset: int, total: bool) -> Page:
        """Current, non-deleted resources of ``type_`` matching ``filter_``."""

    @abstractmethod
    def commit(self, writes: list[Write]) -> None:
        """Apply all writes atomically; raise :class:`VersionConflict` if any expectation fails."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the write lock and group the commits made inside into one unit.

        On SQLite the commits inside become one atomic, durable commit at the end (one WAL sync for
        all of them), reads inside see them, and a nested ``transaction()`` that raises undoes only
        its own part (a savepoint). This default, used by MongoDB (which has no savepoints), only
        holds the lock: each commit inside stays atomic and durable on its own.
        """
        with self.lock:
            yield

    @abstractmethod
    def log_message(self, message: LoggedMessage) -> None:
        """Keep a received message and its reply durably (within the current transaction, if any)."""

    @abstractmethod
    def last_message(self, kind: str, key: str) -> LoggedMessage | None:
        """The latest message logged under ``kind``/``key``, or None."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def read_many(self, type_: str, ids: list[str]) -> list[StoredResource]:
        """Current, non-deleted versions of several resources of one type (for ``_include``)."""

    @staticmethod
    def check_type(type_: str) -> None:
        """Refuse a type DACS does not serve (type names become table and collection names)."""
        if type_ not in SERVED_TYPES:
            raise ValueError(f"unknown resource type {type_!r}")
