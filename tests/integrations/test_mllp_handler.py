"""Hl7Receiver without sockets: the path ``dacs import`` takes (files and batches), receipts and hooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.mllp import Hl7Receiver, Receipt, UnidentifiableMessage
from mappings.hl7v2 import AckOutcome, MappingResult, split_messages


class MemoryStore:
    def __init__(self, fail_put: bool = False) -> None:
        self.acks: dict[str, bytes] = {}
        self.fail_put = fail_put
        self.archived: list[tuple[str | None, AckOutcome]] = []

    async def get(self, key: str, raw: bytes) -> bytes | None:
        return self.acks.get(key)

    async def put(self, key: str | None, raw: bytes, ack: bytes | None, outcome: AckOutcome) -> None:
        if self.fail_put and outcome is AckOutcome.ACCEPT:
            raise OSError("archive unavailable")
        self.archived.append((key, outcome))
        if key and outcome is AckOutcome.ACCEPT:
            self.acks[key] = ack or b""


def tally(receipts: list[Receipt]) -> tuple[int, int, int]:
    imported = sum(r.outcome is AckOutcome.ACCEPT and not r.duplicate for r in receipts)
    skipped = sum(r.duplicate for r in receipts)
    return imported, skipped, len(receipts) - imported - skipped


async def test_import_every_sample_file_twice(samples_dir: Path) -> None:
    committed: list[MappingResult] = []

    async def commit(result: MappingResult, raw: bytes) -> None:
        committed.append(result)

    receiver = Hl7Receiver(commit=commit, store=MemoryStore())
    files = sorted((samples_dir / "hl7").glob("*.hl7"))
    first = [await receiver.process(m) for f in files for m in split_messages(f.read_bytes()).messages]
    # 16 messages (the batch holds 2); 06 and 07 share MSH-3/4/10, so 07 is taken as a repeat of 06
    # (this store does not compare payloads); ORU ×3 and RSP are refused.
    assert tally(first) == (11, 1, 4)
    assert all(r.ack is None for r in first if r.key and r.key.endswith(("12334456778890", "12334456778891")))
    again = [await receiver.process(m) for f in files for m in split_messages(f.read_bytes()).messages]
    assert tally(again) == (0, 12, 4)
    assert len(committed) == 11
    refused = [r for r in first if r.outcome is AckOutcome.REJECT]
    assert {r.error.code for r in refused if r.error} == {200}


async def test_archive_failure_after_commit_is_a_retryable_reject() -> None:
    receiver = Hl7Receiver(store=MemoryStore(fail_put=True))
    raw = b"MSH|^~\\&|RIS|H|DACS|H|||ADT^A08|9|P|2.5\rPID|||1^^^H||Doe\r"
    receipt = await receiver.process(raw)
    assert receipt.outcome is AckOutcome.REJECT and receipt.result is not None
    assert receipt.ack is not None and b"MSA|AR|9" in receipt.ack


async def test_bytes_without_msh() -> None:
    receiver = Hl7Receiver()
    receipt = await receiver.process(b"hello")
    assert receipt.key is None and receipt.ack is None and receipt.error is not None
    with pytest.raises(UnidentifiableMessage):
        await receiver.receive(b"hello")
