"""HL7 v2 ingest: the store side of the MLLP receiver (commit hook and ACK store).

* ``commit`` writes a mapped message's transaction Bundle in one transaction, merging each upsert
  into the stored resource with the HL7 v2 rule (sent → replace, ``""`` → clear, not sent → keep),
  then links orders to their studies and applies A40 merges (every resource of the merged patient is
  re-pointed).
* ``get``/``put`` remember what was acknowledged: the same MSH-3+MSH-4+MSH-10 with the same bytes gets
  the stored ACK and is not processed again; with different bytes it is an AE 205. Every raw message
  is archived with its ACK, as one record (kind ``hl7``: the message and the ACK bytes, base64, with
  the outcome and time), so that a receipt costs one durable write; messages that were not accepted
  are also put in the quarantine.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from fhir_server.archive import Archive, QuarantineEntry
from fhir_server.archive.base import digest
from fhir_server.bundle import BundleProcessor
from fhir_server.ingest.reconcile import Reconciler
from fhir_server.service import FhirService, now_instant
from mappings.hl7v2 import AckOutcome, MappingResult, merge_upsert
from mappings.hl7v2.errors import DuplicateKeyIdentifier


class Hl7Pipeline:
    """Commit hook and ACK store for :class:`integrations.mllp.Hl7Receiver`."""

    def __init__(self, service: FhirService, archive: Archive) -> None:
        self.service = service
        self.archive = archive
        self.reconciler = Reconciler(service)

    # -- commit hook ------------------------------------------------------------------------------
    async def __call__(self, result: MappingResult, raw: bytes) -> None:
        await asyncio.to_thread(self.commit, result)

    def commit(self, result: MappingResult) -> None:
        """Write one accepted message's resources (synchronous; the caller runs it off the event loop)."""
        orders: list[str] = []
        if result.bundle:
            upserts = {u.full_url: u for u in result.upserts}

            def merge(full_url: str | None, stored: dict[str, Any] | None, incoming: dict[str, Any]) -> dict:
                upsert = upserts.get(full_url or "")
                return merge_upsert(stored, incoming, upsert) if upsert is not None else incoming

            entries = BundleProcessor(self.service, merge).transaction(result.bundle.get("entry", []))
            orders = [e.stored.id for e in entries if e.stored is not None and e.stored.type == "ServiceRequest"]
        for order_id in orders:
            self.reconciler.link_order(order_id)
        for repoint in result.repoints:
            old = self.service.find("Patient", [("identifier", repoint.old.token)], limit=1)
            new = self.service.find("Patient", [("identifier", repoint.new.token)], limit=1)
            if old and new and old[0].id != new[0].id:
                self.reconciler.repoint_patient(old[0].id, new[0].id)

    # -- ACK store --------------------------------------------------------------------------------
    async def get(self, key: str, raw: bytes) -> bytes | None:
        record = await asyncio.to_thread(self.archive.get, "hl7", key)
        if record is None:
            return None
        sent = json.loads(record)
        if sent["outcome"] != AckOutcome.ACCEPT.value:
            return None  # not accepted before: process the re-send
        if sent["message_sha256"] != digest(raw):
            raise DuplicateKeyIdentifier(f"message {key} was already received with different content")
        return base64.b64decode(sent["ack"]) if sent["ack"] is not None else b""

    async def put(self, key: str | None, raw: bytes, ack: bytes | None, outcome: AckOutcome) -> None:
        await asyncio.to_thread(self._archive, key, raw, ack, outcome)

    def _archive(self, key: str | None, raw: bytes, ack: bytes | None, outcome: AckOutcome) -> None:
        now = now_instant()
        sha = digest(raw)
        name = key or f"unidentified-{sha}"
        record = {"message_sha256": sha, "outcome": outcome.value, "at": now,
                  "message": base64.b64encode(raw).decode(),
                  "ack": base64.b64encode(ack).decode() if ack is not None else None}
        self.archive.put("hl7", name, json.dumps(record).encode(), now)
        if outcome is not AckOutcome.ACCEPT:
            text = (ack or b"").decode("latin-1").replace("\r", " | ")
            self.archive.quarantine(QuarantineEntry("hl7", name, sha, f"{outcome.value}: {text[:500]}", now))
        else:
            self.archive.release("hl7", name)
