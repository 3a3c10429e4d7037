"""The archive as files: ``<root>/<kind>/<key>/<sha256>.bin`` written atomically and fsynced.

A write goes to a temporary file, is fsynced, renamed into place and the directory fsynced, so a
crash leaves either the whole object or nothing. Keys are used as directory names after escaping
anything but ``[A-Za-z0-9._-]``.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from fhir_server.archive.base import Archive, ArchivedObject, QuarantineEntry, digest

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _safe(key: str) -> str:
    return _UNSAFE.sub(lambda m: f"%{ord(m.group(0)):02X}", key) or "%00"


def _unsafe(name: str) -> str:
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class FileArchive(Archive):
    """Archive of originals in the data directory (the SQLite deployment)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, kind: str, key: str) -> Path:
        return self.root / _safe(kind) / _safe(key)

    def put(self, kind: str, key: str, data: bytes, received: str) -> tuple[ArchivedObject, bool]:
        sha = digest(data)
        folder = self._dir(kind, key)
        path = folder / f"{sha}.bin"
        record = ArchivedObject(kind, key, sha, len(data), received)
        if path.exists():
            return self._record(kind, key, path), False
        _write_atomic(path, data)
        _write_atomic(folder / f"{sha}.json", json.dumps({"received": received, "size": len(data)}).encode())
        return record, True

    def _record(self, kind: str, key: str, path: Path) -> ArchivedObject:
        sidecar = path.with_suffix(".json")
        meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        return ArchivedObject(kind, key, path.stem, path.stat().st_size, meta.get("received", ""))

    def versions(self, kind: str, key: str) -> list[ArchivedObject]:
        folder = self._dir(kind, key)
        if not folder.is_dir():
            return []
        records = [self._record(kind, key, p) for p in folder.glob("*.bin")]
        return sorted(records, key=lambda r: (r.received, r.sha256))

    def get(self, kind: str, key: str, sha256: str | None = None) -> bytes | None:
        if sha256 is None:
            versions = self.versions(kind, key)
            if not versions:
                return None
            sha256 = versions[-1].sha256
        path = self._dir(kind, key) / f"{sha256}.bin"
        return path.read_bytes() if path.exists() else None

    def keys(self, kind: str) -> list[str]:
        folder = self.root / _safe(kind)
        if not folder.is_dir():
            return []
        return sorted(_unsafe(p.name) for p in folder.iterdir() if p.is_dir() and any(p.glob("*.bin")))

    def _quarantine_path(self, kind: str, key: str) -> Path:
        return self.root / "_quarantine" / _safe(kind) / f"{_safe(key)}.json"

    def quarantine(self, entry: QuarantineEntry) -> None:
        payload = {"kind": entry.kind, "key": entry.key, "sha256": entry.sha256, "reason": entry.reason,
                   "since": entry.since or datetime.now(UTC).isoformat()}
        _write_atomic(self._quarantine_path(entry.kind, entry.key), json.dumps(payload).encode())

    def release(self, kind: str, key: str) -> None:
        path = self._quarantine_path(kind, key)
        if path.exists():
            path.unlink()
            _fsync_dir(path.parent)

    def quarantined(self, kind: str | None = None) -> list[QuarantineEntry]:
        base = self.root / "_quarantine"
        pattern = f"{_safe(kind)}/*.json" if kind else "*/*.json"
        entries = [QuarantineEntry(**json.loads(p.read_text())) for p in base.glob(pattern)] if base.is_dir() else []
        return sorted(entries, key=lambda e: e.since)
