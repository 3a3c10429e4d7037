"""The archive as files: ``<root>/<kind>/<xx>/<yy>/<key>__<received>__<sha256>.bin``.

One file per stored version, written atomically (temporary file, fsync, rename, fsync of the folder),
so a crash leaves either the whole object or nothing, and a put costs one file fsync. ``xx/yy`` are
the first four hex digits of the key's SHA-256 (65,536 folders), so that finding a key's versions
reads a folder of a few dozen files even with millions of objects. Keys are escaped to
``[A-Za-z0-9._-]`` in file names (``%XX`` for anything else) and are reversible. The quarantine is one
small JSON file per flagged object.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from fhir_server.archive.base import Archive, ArchivedObject, QuarantineEntry, digest

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
_NAME = re.compile(r"^(?P<key>.+)__(?P<received>[0-9TZ.:+-]+)__(?P<sha>[0-9a-f]{64})\.bin$")


def _safe(key: str) -> str:
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group(0).encode()), key) or "%00"


def _unsafe(name: str) -> str:
    return re.sub(r"(?:%[0-9A-F]{2})+", lambda m: bytes.fromhex(m.group(0).replace("%", "")).decode(), name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    if not path.parent.is_dir():
        created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in created:  # each new folder's entry must be durable in its parent
            _fsync_dir(folder.parent)
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

    def _shard(self, kind: str, key: str) -> Path:
        digest_ = hashlib.sha256(key.encode()).hexdigest()
        return self.root / _safe(kind) / digest_[:2] / digest_[2:4]

    def _files(self, kind: str, key: str) -> list[tuple[ArchivedObject, Path]]:
        shard = self._shard(kind, key)
        prefix = _safe(key) + "__"
        if not shard.is_dir():
            return []
        found = []
        for path in shard.iterdir():
            match = _NAME.match(path.name) if path.name.startswith(prefix) else None
            if match and match.group("key") == _safe(key):
                record = ArchivedObject(kind, key, match.group("sha"), path.stat().st_size, match.group("received"))
                found.append((record, path))
        return sorted(found, key=lambda item: (item[0].received, item[0].sha256))

    def put(self, kind: str, key: str, data: bytes, received: str) -> tuple[ArchivedObject, bool]:
        sha = digest(data)
        for record, _ in self._files(kind, key):
            if record.sha256 == sha:
                return record, False
        stamp = received.replace(":", "")  # portable file names
        _write_atomic(self._shard(kind, key) / f"{_safe(key)}__{stamp}__{sha}.bin", data)
        return ArchivedObject(kind, key, sha, len(data), stamp), True

    def versions(self, kind: str, key: str) -> list[ArchivedObject]:
        return [record for record, _ in self._files(kind, key)]

    def get(self, kind: str, key: str, sha256: str | None = None) -> bytes | None:
        files = self._files(kind, key)
        for record, path in reversed(files):
            if sha256 is None or record.sha256 == sha256:
                return path.read_bytes()
        return None

    def keys(self, kind: str) -> list[str]:
        folder = self.root / _safe(kind)
        if not folder.is_dir():
            return []
        names = set()
        for path in folder.glob("*/*/*.bin"):
            match = _NAME.match(path.name)
            if match:
                names.add(_unsafe(match.group("key")))
        return sorted(names)

    def _quarantine_path(self, kind: str, key: str) -> Path:
        return self.root / "_quarantine" / _safe(kind) / f"{_safe(key)}.json"

    def quarantine(self, entry: QuarantineEntry) -> None:
        payload = {"kind": entry.kind, "key": entry.key, "sha256": entry.sha256, "reason": entry.reason,
                   "since": entry.since or datetime.now(UTC).isoformat()}
        _write_atomic(self._quarantine_path(entry.kind, entry.key), json.dumps(payload).encode())

    def is_quarantined(self, kind: str, key: str) -> bool:
        return self._quarantine_path(kind, key).exists()

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
