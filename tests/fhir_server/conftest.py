"""Fixtures for the FHIR server tests: one service per storage backend, and a real running server.

The storage conformance suite runs on every backend: SQLite always, MongoDB on mongomock, and on a
real MongoDB server when ``MONGODB_URI`` is set (e.g. ``mongodb://localhost:27017``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_server.service import FhirService
from fhir_server.settings import Settings
from fhir_server.storage import Store, open_store

BACKENDS = ["sqlite", "mongomock"] + (["mongodb"] if os.environ.get("MONGODB_URI") else [])


def make_store(backend: str, tmp: Path) -> Store:
    if backend == "sqlite":
        return open_store(f"sqlite:///{tmp / 'dacs.sqlite3'}")
    if backend == "mongomock":
        return open_store(f"mongomock://local/dacs_{uuid.uuid4().hex[:8]}")
    uri = os.environ["MONGODB_URI"].rstrip("/")
    return open_store(f"{uri}/dacs_test_{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=BACKENDS)
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FhirService]:
    """A fresh FhirService on each backend."""
    store = make_store(request.param, tmp_path)
    yield FhirService(store, Settings(data_dir=tmp_path))
    if request.param == "mongodb":
        store.client.drop_database(store.db.name)  # type: ignore[attr-defined]
    store.close()


class RunningServer:
    """A ``dacs serve`` process on free ports (``base``: FHIR URL; ``ports``: listener → port)."""

    def __init__(self, data_dir: Path, store: str = "") -> None:
        args = [sys.executable, "-m", "fhir_server.cli", "serve", "--http-port", "0", "--mllp-port", "0",
                "--dicom-port", "0", "--data-dir", str(data_dir)]
        if store:
            args += ["--store", store]
        self.data_dir = data_dir
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            listener = re.search(r"DACS (\w+) listening on (?:http://)?[^\s:]+:(\d+)", line)
            if listener:
                self.ports[listener.group(1)] = int(listener.group(2))
            match = re.search(r"HTTP listening on (http://\S+)", line)
            if match:
                self.base = match.group(1)
                break
        else:
            raise RuntimeError("dacs serve did not start:\n" + "".join(self.lines))
        # keep draining the output so the server never blocks on a full pipe
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: the server shuts down cleanly and exits 0."""
        self.process.terminate()
        code = self.process.wait(timeout=60)
        assert code == 0, "".join(self.lines[-30:])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``dacs serve`` on the embedded SQLite store, shared by the HTTP tests."""
    running = RunningServer(tmp_path_factory.mktemp("dacs-http"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``dacs serve`` on the MongoDB backend (a real server when MONGODB_URI is set, else mongomock)."""
    uri = os.environ.get("MONGODB_URI")
    store = f"{uri.rstrip('/')}/dacs_http_{uuid.uuid4().hex[:8]}" if uri else "mongomock://local/dacs_http"
    running = RunningServer(tmp_path_factory.mktemp("dacs-http-mongo"), store)
    yield running
    running.stop()
