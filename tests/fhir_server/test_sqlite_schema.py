"""The SQLite schema's versions: an older database is brought up to date on open, keeping its data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fhir_server.service import FhirService
from fhir_server.settings import Settings
from fhir_server.storage.sqlite import SQLiteStore


def _index_sql(path: Path, name: str) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]


def test_version_0_database_gets_partial_indexes_and_keeps_its_data(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "old.sqlite3"
    store = SQLiteStore(path)
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01", "name": [{"family": "Old"}]}
    FhirService(store, Settings(data_dir=tmp_path)).update("Patient", "p1", patient)
    store.close()
    with sqlite3.connect(path) as conn:  # what version 0 had: full indexes, no user_version
        conn.executescript('DROP INDEX "idx_Patient_lo"; CREATE INDEX "idx_Patient_lo" ON "idx_Patient" (p, lo);'
                           "PRAGMA user_version = 0;")
    assert "WHERE" not in _index_sql(path, "idx_Patient_lo")

    store = SQLiteStore(path)
    service = FhirService(store, Settings(data_dir=tmp_path))
    assert "from schema version 0 to" in caplog.text  # the operator is told why start-up takes longer
    assert "WHERE lo IS NOT NULL" in _index_sql(path, "idx_Patient_lo")
    assert "WHERE t IS NOT NULL" in _index_sql(path, "idx_Patient_t")
    found = service.search("Patient", [("birthdate", "lt1980"), ("name:exact", "Old")]).page.resources
    assert [r.id for r in found] == ["p1"]
    plan = " ".join(row[3] for row in store._writer.execute(
        'EXPLAIN QUERY PLAN SELECT rid FROM "idx_Patient" WHERE p = ? AND lo < ?', ("birthdate", 1)))
    assert "idx_Patient_lo" in plan  # a comparison on lo still uses the partial index
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(RuntimeError, match="newer DACS"):
        SQLiteStore(path)
