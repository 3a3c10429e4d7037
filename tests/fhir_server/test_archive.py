"""The archive of originals, on both backends: verbatim, idempotent, versioned, with a quarantine."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_server.archive import Archive, QuarantineEntry, open_archive
from tests.fhir_server.conftest import BACKENDS, make_store


@pytest.fixture(params=BACKENDS)
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Archive:
    return open_archive(make_store(request.param, tmp_path), tmp_path)


def test_put_is_verbatim_idempotent_and_versioned(archive: Archive) -> None:
    big = bytes(range(256)) * 4000  # > one GridFS chunk
    record, new = archive.put("dicom", "1.2.3.4", big, "2026-01-01T00:00:00Z")
    assert new and record.size == len(big)
    again, new_again = archive.put("dicom", "1.2.3.4", big, "2026-01-02T00:00:00Z")
    assert not new_again and again.sha256 == record.sha256
    assert archive.get("dicom", "1.2.3.4") == big
    corrected, new_version = archive.put("dicom", "1.2.3.4", b"corrected", "2026-01-03T00:00:00Z")
    assert new_version
    assert [v.sha256 for v in archive.versions("dicom", "1.2.3.4")] == [record.sha256, corrected.sha256]
    assert archive.get("dicom", "1.2.3.4") == b"corrected"
    assert archive.get("dicom", "1.2.3.4", record.sha256) == big
    archive.put("dicom", "weird/key with spaces", b"x", "2026-01-04T00:00:00Z")
    assert archive.keys("dicom") == ["1.2.3.4", "weird/key with spaces"]
    assert archive.get("dicom", "missing") is None and archive.keys("hl7") == []


def test_quarantine_lists_and_releases(archive: Archive) -> None:
    archive.put("dicom", "9.9", b"bad", "2026-01-01T00:00:00Z")
    archive.quarantine(QuarantineEntry("dicom", "9.9", "abc", "no dose content", "2026-01-01T00:00:01Z"))
    archive.quarantine(QuarantineEntry("dicom", "9.9", "abc", "still no dose content", "2026-01-01T00:00:02Z"))
    archive.quarantine(QuarantineEntry("hl7", "m1", "def", "unsupported", "2026-01-01T00:00:03Z"))
    assert [e.reason for e in archive.quarantined("dicom")] == ["still no dose content"]
    assert len(archive.quarantined()) == 2
    assert archive.is_quarantined("dicom", "9.9") and not archive.is_quarantined("dicom", "1.1")
    archive.release("dicom", "9.9")
    assert archive.quarantined("dicom") == []
