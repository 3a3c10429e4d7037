"""HL7 v2 ingest: the store side of the MLLP receiver (an :class:`integrations.mllp.Hl7Sink`).

* ``accept`` writes a mapped message's transaction Bundle, merging each upsert into the stored
  resource with the HL7 v2 rule (sent → replace, ``""`` → clear, not sent → keep), links orders to
  their studies, applies A40 merges (every resource of the merged patient is re-pointed) and logs the
  raw message with its ACK — all in one store transaction, so the message, its ACK and its resources
  are durable together or not at all. Concurrent connections' messages share one commit
  (:class:`~fhir_server.ingest.group_commit.GroupCommit`).
* Both first look in the message log, in the same transaction: the same MSH-3+MSH-4+MSH-10 with the
  same bytes as an accepted message gets the stored ACK and is not processed again; with different
  bytes ``accept`` raises DuplicateKeyIdentifier (an AE 205).
* ``refuse`` logs a message that was not accepted with its ACK and puts it in the quarantine.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fhir_server.archive import Archive, QuarantineEntry
from fhir_server.archive.base import digest
from fhir_server.bundle import BundleProcessor
from fhir_server.errors import FhirError
from fhir_server.ingest.group_commit import GroupCommit
from fhir_server.ingest.reconcile import Reconciler
from fhir_server.service import FhirService, now_instant
from fhir_server.storage import LoggedMessage
from fhir_server.validation import validate_resource_cached
from mappings.hl7v2 import AckOutcome, MappingResult, merge_upsert
from mappings.hl7v2.errors import ApplicationInternalError, DuplicateKeyIdentifier

KIND = "hl7"

log = logging.getLogger(__name__)


class Hl7Pipeline:
    """Commits, remembers and keeps HL7 v2 messages for :class:`integrations.mllp.Hl7Receiver`."""

    def __init__(self, service: FhirService, archive: Archive) -> None:
        self.service = service
        self.archive = archive
        self.reconciler = Reconciler(service)
        self.writer = GroupCommit(service.store)

    def close(self) -> None:
        self.writer.close()

    # -- Hl7Sink ----------------------------------------------------------------------------------
    async def accept(self, key: str, raw: bytes, result: MappingResult, ack: bytes | None) -> bytes | None:
        # Validation is pure CPU: done here, on the receiving thread, it overlaps the writer's commit of
        # the previous group (the writer waits on the disk then), instead of adding to the writer's turn.
        self.validate(result)
        message = LoggedMessage(KIND, key, now_instant(), digest(raw), AckOutcome.ACCEPT.value, raw, ack)
        stored, was_refused = await self.writer.run(lambda: self._commit(result, message))
        if was_refused:
            # committed now: the earlier refusal's quarantine flag goes; failing to remove it must not
            # turn the committed message's AA into an AR
            try:
                await asyncio.to_thread(self.archive.release, KIND, key)
            except OSError:
                log.exception("HL7 %s: committed, but its quarantine flag could not be removed", key)
        return stored

    async def refuse(self, key: str | None, raw: bytes, ack: bytes | None, outcome: AckOutcome) -> bytes | None:
        return await asyncio.to_thread(self._refuse, key, raw, ack, outcome)

    @staticmethod
    def _stored_ack(logged: LoggedMessage | None, sha256: str) -> bytes | None:
        """The ACK of ``logged`` (the last message under a key; ``b""`` if it asked for none) if it was
        accepted with these bytes, else None.

        Raises DuplicateKeyIdentifier when it was accepted with other bytes.
        """
        if logged is None or logged.outcome != AckOutcome.ACCEPT.value:
            return None  # never accepted: process the re-send
        if logged.sha256 != sha256:
            raise DuplicateKeyIdentifier(f"message {logged.key} was already received with different content")
        return logged.reply if logged.reply is not None else b""

    # -- work -------------------------------------------------------------------------------------
    @staticmethod
    def validate(result: MappingResult) -> None:
        """Validate the mapped resources; a mapping that made invalid FHIR is an application error."""
        for entry in (result.bundle or {}).get("entry", []):
            resource = entry.get("resource")
            if isinstance(resource, dict):
                type_ = str(resource.get("resourceType"))
                try:
                    validate_resource_cached(resource, type_)
                except FhirError as exc:
                    raise ApplicationInternalError(f"the mapped {type_} is not valid FHIR: {exc.diagnostics}") from None

    def _commit(self, result: MappingResult, message: LoggedMessage) -> tuple[bytes | None, bool]:
        """Write one accepted message's resources and log it, in one transaction (the writer's unit).

        ``result`` passed :meth:`validate` (what merging into stored resources changes is validated
        again). Returns the stored ACK if ``message`` was accepted before (then nothing is written),
        and whether an earlier copy was refused (its key is in the quarantine).
        """
        with self.service.store.transaction():
            last = self.service.store.last_message(KIND, message.key)
            if (earlier_ack := self._stored_ack(last, message.sha256)) is not None:
                return earlier_ack, False
            orders: list[str] = []
            if result.bundle:
                upserts = {u.full_url: u for u in result.upserts}

                def merge(full_url: str | None, stored: dict[str, Any] | None, incoming: dict[str, Any]) -> dict:
                    upsert = upserts.get(full_url or "")
                    return merge_upsert(stored, incoming, upsert) if upsert is not None else incoming

                entries = BundleProcessor(self.service, merge).transaction(result.bundle.get("entry", []),
                                                                           prevalidated=True)
                orders = [e.stored.id for e in entries if e.stored is not None and e.stored.type == "ServiceRequest"]
            for order_id in orders:
                self.reconciler.link_order(order_id)
            for repoint in result.repoints:
                old = self.service.find("Patient", [("identifier", repoint.old.token)], limit=1)
                new = self.service.find("Patient", [("identifier", repoint.new.token)], limit=1)
                if old and new and old[0].id != new[0].id:
                    self.reconciler.repoint_patient(old[0].id, new[0].id)
            self.service.store.log_message(message)
        return None, last is not None and last.outcome != AckOutcome.ACCEPT.value

    def _refuse(self, key: str | None, raw: bytes, ack: bytes | None, outcome: AckOutcome) -> bytes | None:
        now = now_instant()
        sha = digest(raw)
        if key is not None:
            try:
                stored = self._stored_ack(self.service.store.last_message(KIND, key), sha)
            except DuplicateKeyIdentifier:
                stored = None  # another message had this key: this one is refused all the same
            if stored is not None:
                return stored
        name = key or f"unidentified-{sha}"
        self.service.store.log_message(LoggedMessage(KIND, name, now, sha, outcome.value, raw, ack))
        text = (ack or b"").decode("latin-1").replace("\r", " | ")
        self.archive.quarantine(QuarantineEntry(KIND, name, sha, f"{outcome.value}: {text[:500]}", now))
        return None
