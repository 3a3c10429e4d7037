"""GroupCommit: results only after the group's commit, failures kept to their unit, a failed commit
fails the whole group, close() finishes what was queued."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fhir_server.ingest.group_commit import GroupCommit
from fhir_server.service import FhirService
from fhir_server.settings import Settings
from fhir_server.storage.sqlite import SQLiteStore


class FlakyCommitStore:
    """A store whose outermost transaction fails when it ends (a full disk at COMMIT)."""

    def __init__(self) -> None:
        self.depth = 0
        self.fail = True

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.depth == 0 and self.fail:
            raise OSError("disk full at commit")


async def test_results_come_after_the_commit_and_failures_stay_with_their_unit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    service = FhirService(store, Settings(data_dir=tmp_path))
    writer = GroupCommit(store)

    def write(i: int) -> str:
        service.update("Patient", f"p{i}", {"resourceType": "Patient", "id": f"p{i}"})
        if i == 2:
            raise ValueError("unit 2 fails after writing")
        return f"p{i}"

    results = await asyncio.gather(*(writer.run(lambda i=i: write(i)) for i in range(5)), return_exceptions=True)
    assert results[:2] == ["p0", "p1"] and isinstance(results[2], ValueError) and results[3:] == ["p3", "p4"]
    seen = []  # read from another connection: committed and durable by the time the results came
    reader = threading.Thread(target=lambda: seen.extend(store.read("Patient", f"p{i}") is not None for i in range(5)))
    reader.start()
    reader.join()
    assert seen == [True, True, False, True, True]
    writer.close()
    store.close()


async def test_a_failed_commit_fails_every_unit_of_the_group() -> None:
    store = FlakyCommitStore()
    writer = GroupCommit(store)  # type: ignore[arg-type]
    results = await asyncio.gather(*(writer.run(lambda: "done") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    store.fail = False
    assert await writer.run(lambda: "done") == "done"
    writer.close()


async def test_close_finishes_queued_units(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    writer = GroupCommit(store, max_units=3)
    tasks = [asyncio.ensure_future(writer.run(lambda i=i: i)) for i in range(10)]
    await asyncio.sleep(0)  # let every task queue its unit
    await asyncio.to_thread(writer.close)
    assert await asyncio.gather(*tasks) == list(range(10))
    store.close()

