"""Hl7Receiver without sockets: the path ``dacs import`` takes (files and batches), receipts and hooks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from integrations.mllp import Hl7Receiver, Receipt, UnidentifiableMessage
from mappings.hl7v2 import AckOutcome, split_messages
from tests.integrations.sinks import MemorySink


def tally(receipts: list[Receipt]) -> tuple[int, int, int]:
    imported = sum(r.outcome is AckOutcome.ACCEPT and not r.duplicate for r in receipts)
    skipped = sum(r.duplicate for r in receipts)
    return imported, skipped, len(receipts) - imported - skipped


async def test_import_every_sample_file_twice(samples_dir: Path) -> None:
    sink = MemorySink()
    receiver = Hl7Receiver(sink)
    files = sorted((samples_dir / "hl7").glob("*.hl7"))
    first = [await receiver.process(m) for f in files for m in split_messages(f.read_bytes()).messages]
    # 16 messages (the batch holds 2); 06 and 07 share MSH-3/4/10 with other content, so 07 is refused
    # (AE 205), as are ORU ×3 and RSP.
    assert tally(first) == (11, 0, 5)
    assert all(r.ack is None for r in first if r.key and r.key.endswith(("12334456778890", "12334456778891")))
    again = [await receiver.process(m) for f in files for m in split_messages(f.read_bytes()).messages]
    assert tally(again) == (0, 11, 5)
    assert len(sink.committed) == 11 and sink.outcomes().count(AckOutcome.ACCEPT) == 11
    refused = [r for r in first if r.outcome is AckOutcome.REJECT]
    assert {r.error.code for r in refused if r.error} == {200}
    assert [r.error.code for r in first if r.outcome is AckOutcome.ERROR and r.error] == [205]


async def test_store_failure_is_a_retryable_reject() -> None:
    sink = MemorySink(fail=True)
    receiver = Hl7Receiver(sink)
    raw = b"MSH|^~\\&|RIS|H|DACS|H|||ADT^A08|9|P|2.5\rPID|||1^^^H||Doe\r"
    receipt = await receiver.process(raw)
    assert receipt.outcome is AckOutcome.REJECT and receipt.result is not None
    assert receipt.ack is not None and b"MSA|AR|9" in receipt.ack
    assert sink.kept == [(receipt.key, raw, receipt.ack, AckOutcome.REJECT)]  # kept for inspection


async def test_bytes_without_msh() -> None:
    receiver = Hl7Receiver()
    receipt = await receiver.process(b"hello")
    assert receipt.key is None and receipt.ack is None and receipt.error is not None
    with pytest.raises(UnidentifiableMessage):
        await receiver.receive(b"hello")


async def test_accepted_copy_is_answered_as_then_even_if_it_no_longer_maps() -> None:
    """A repeat is recognised on the refuse path too: what was accepted once keeps its ACK."""
    raw = b"MSH|^~\\&|RIS|H|DACS|H|||ORU^R01|77|P|2.5\rPID|||1^^^H||Doe\r"  # ORU: refused today
    sink = MemorySink()
    sink.accepted["RIS|H|77"] = (hashlib.sha256(raw).hexdigest(), b"MSH|stored ACK\r")
    receipt = await Hl7Receiver(sink).process(raw)
    assert receipt.duplicate and receipt.ack == b"MSH|stored ACK\r" and sink.kept == []
    other = raw.replace(b"Doe", b"Roe")  # same key, other bytes: refused as it is, and kept
    receipt = await Hl7Receiver(sink).process(other)
    assert receipt.outcome is AckOutcome.REJECT and sink.kept == [(receipt.key, other, receipt.ack, AckOutcome.REJECT)]
