"""The archive interface and the choice of backend."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from fhir_server.storage.base import Store


@dataclass(frozen=True)
class ArchivedObject:
    """One archived version of an object."""

    kind: str
    key: str
    sha256: str
    size: int
    received: str


@dataclass(frozen=True)
class QuarantineEntry:
    """An archived object that could not be processed, with the reason."""

    kind: str
    key: str
    sha256: str
    reason: str
    since: str


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Archive(ABC):
    """Verbatim storage of received objects plus a quarantine of those that failed."""

    @abstractmethod
    def put(self, kind: str, key: str, data: bytes, received: str) -> tuple[ArchivedObject, bool]:
        """Keep ``data`` durably; returns the record and whether these bytes were new."""

    @abstractmethod
    def get(self, kind: str, key: str, sha256: str | None = None) -> bytes | None:
        """The bytes of an object (its latest version unless ``sha256`` names one)."""

    @abstractmethod
    def versions(self, kind: str, key: str) -> list[ArchivedObject]:
        """All versions of an object, oldest first."""

    @abstractmethod
    def keys(self, kind: str) -> list[str]:
        """Every key archived under ``kind``."""

    @abstractmethod
    def quarantine(self, entry: QuarantineEntry) -> None:
        """Flag an archived object as failed (replacing an earlier flag)."""

    @abstractmethod
    def release(self, kind: str, key: str) -> None:
        """Remove the quarantine flag (after a successful retry)."""

    @abstractmethod
    def quarantined(self, kind: str | None = None) -> list[QuarantineEntry]:
        """Flagged objects, oldest first."""

    @abstractmethod
    def is_quarantined(self, kind: str, key: str) -> bool:
        """Whether one object is flagged (cheap: checked on every receipt)."""


def open_archive(store: Store, data_dir: Path) -> Archive:
    """Files under the data directory for SQLite; GridFS-layout collections for MongoDB."""
    from fhir_server.storage.mongo import MongoStore

    if isinstance(store, MongoStore):
        from fhir_server.archive.gridfs import GridFsArchive

        return GridFsArchive(store.db)
    from fhir_server.archive.files import FileArchive

    return FileArchive(data_dir / "archive")
