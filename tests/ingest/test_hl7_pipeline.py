"""The HL7 v2 pipeline in process, on a real SQLite store: one transaction per message (resources, the
message and its ACK), shared commits across connections, duplicates decided inside the transaction."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_server.runtime import Runtime
from fhir_server.settings import Settings
from fhir_server.storage.sqlite import SQLiteStore
from integrations.mllp import Hl7Receiver
from mappings.hl7v2 import AckOutcome, build_ack, duplicate_key, process_message
from mappings.hl7v2.errors import ApplicationInternalError


def order(i: int, *, note: str = "") -> bytes:
    return (f"MSH|^~\\&|RIS|RAD|DACS|DOSE|20240102030405||ORM^O01|C{i}|P|2.3.1\r"
            f"PID|1||MRN{i}^^^HOSP&1.2.3.4.5&ISO^MR||Doe{note}^Jane||19700101|F\r"
            f"ORC|NW|PLC{i}^RIS|FIL{i}^PACS||SC\r"
            f"OBR|1|PLC{i}^RIS|FIL{i}^PACS|CTHEAD^CT Head^L||||||||||||||ACC{i}\r").encode()


@pytest.fixture(params=["sqlite", "mongomock"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    store = f"mongomock://local/dacs_{uuid.uuid4().hex[:8]}" if request.param == "mongomock" else ""
    rt = Runtime.open(Settings(data_dir=tmp_path, store=store))
    yield rt
    rt.close()


def grouped(runtime: Runtime) -> bool:
    """Whether a group's messages are one transaction (SQLite; MongoDB has no savepoints)."""
    return isinstance(runtime.store, SQLiteStore)


def count(runtime: Runtime, type_: str) -> int:
    return runtime.service.search(type_, [("_summary", "count")]).page.total or 0


async def test_concurrent_messages_share_commits_and_each_is_logged(runtime: Runtime) -> None:
    receiver = Hl7Receiver(runtime.hl7)
    groups: list[int] = []
    commit_group = runtime.hl7.writer._commit

    def spy(units: list) -> None:
        groups.append(len(units))
        commit_group(units)

    runtime.hl7.writer._commit = spy  # type: ignore[method-assign]
    receipts = await asyncio.gather(*(receiver.process(order(i)) for i in range(40)))
    assert all(r.outcome is AckOutcome.ACCEPT and not r.duplicate for r in receipts)
    assert count(runtime, "ServiceRequest") == 40 and count(runtime, "Patient") == 40
    assert sum(groups) == 40 and max(groups) > 1  # several messages per writer turn
    for i, receipt in enumerate(receipts):
        logged = runtime.store.last_message("hl7", receipt.key or "")
        assert logged is not None and logged.message == order(i) and logged.reply == receipt.ack


async def test_same_message_on_two_connections_at_once_is_applied_once(runtime: Runtime) -> None:
    receiver = Hl7Receiver(runtime.hl7)
    first, second = await asyncio.gather(receiver.process(order(1)), receiver.process(order(1)))
    assert sorted([first.duplicate, second.duplicate]) == [False, True] and first.ack == second.ack
    patient = runtime.service.search("Patient", [("identifier", "MRN1")]).page.resources
    assert len(patient) == 1 and patient[0].version == 1
    other = await receiver.process(order(1, note="x"))  # same MSH-10, other content
    assert other.outcome is AckOutcome.ERROR and other.error is not None and other.error.code == 205


async def test_a_failing_message_is_undone_alone(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Hl7Receiver(runtime.hl7)
    link_order = runtime.hl7.reconciler.link_order

    def fail_for_one(order_id: str) -> int:
        stored = runtime.store.read("ServiceRequest", order_id)
        if stored is not None and b"PLC3" in (stored.body or b""):
            raise OSError("disk trouble")
        return link_order(order_id)

    monkeypatch.setattr(runtime.hl7.reconciler, "link_order", fail_for_one)
    receipts = await asyncio.gather(*(receiver.process(order(i)) for i in range(6)))
    outcomes = {r.key: r.outcome for r in receipts}
    assert outcomes.pop("RIS|RAD|C3") is AckOutcome.REJECT  # AR: send it again
    assert set(outcomes.values()) == {AckOutcome.ACCEPT}
    # everything of the others; nothing of message 3 on SQLite. On MongoDB (no savepoints) what
    # message 3 committed before failing stays, and the re-send's upserts complete it.
    assert count(runtime, "ServiceRequest") == (5 if grouped(runtime) else 6)
    assert bool(runtime.service.search("Patient", [("identifier", "MRN3")]).page.resources) is not grouped(runtime)
    assert runtime.store.last_message("hl7", "RIS|RAD|C3").outcome == "reject"  # type: ignore[union-attr]
    assert runtime.archive.is_quarantined("hl7", "RIS|RAD|C3")
    monkeypatch.setattr(runtime.hl7.reconciler, "link_order", link_order)
    again = await receiver.process(order(3))  # the re-send succeeds and leaves the quarantine
    assert again.outcome is AckOutcome.ACCEPT and not runtime.archive.is_quarantined("hl7", "RIS|RAD|C3")
    assert count(runtime, "ServiceRequest") == 6 and count(runtime, "Patient") == 6


async def test_mapping_that_makes_invalid_fhir_is_an_application_error(runtime: Runtime) -> None:
    raw = order(9)
    result = process_message(raw)
    broken = copy.deepcopy(result)
    assert broken.bundle is not None
    broken.bundle["entry"][0]["resource"]["gender"] = "not-a-gender"
    ack = build_ack(result.header, AckOutcome.ACCEPT)
    with pytest.raises(ApplicationInternalError, match="not valid FHIR"):
        await runtime.hl7.accept(duplicate_key(result.header), raw, broken, ack)
    assert count(runtime, "Patient") == 0 and runtime.store.last_message("hl7", duplicate_key(result.header)) is None


def update(i: int) -> bytes:
    return (f"MSH|^~\\&|RIS|RAD|DACS|DOSE|20240102030405||ADT^A08|U{i}|P|2.5\r"
            f"PID|1||SAME^^^HOSP&1.2.3.4.5&ISO^MR||Name{i:03d}^Jane||19700101|F\r").encode()


async def test_a_file_is_applied_in_order_many_messages_per_commit(runtime: Runtime) -> None:
    """``dacs import`` hands messages on many at a time; updates of one patient still apply in file order."""
    messages = [update(i) for i in range(70)]
    receipts = await Hl7Receiver(runtime.hl7).process_many(messages, window=32)
    assert [r.key for r in receipts] == [f"RIS|RAD|U{i}" for i in range(70)]
    assert all(r.outcome is AckOutcome.ACCEPT and not r.duplicate for r in receipts)
    [patient] = runtime.service.search("Patient", [("identifier", "SAME")]).page.resources
    history = runtime.service.history("Patient", patient.id, {"_count": "100"}).resources
    families = [h.resource()["name"][0]["family"] for h in reversed(history)]
    assert families == [f"Name{i:03d}" for i in range(70)]  # one version per message, in file order
