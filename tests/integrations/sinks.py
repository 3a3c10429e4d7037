"""An in-memory :class:`integrations.mllp.Hl7Sink` for the MLLP tests (the real one is the pipeline's)."""

from __future__ import annotations

import hashlib

from fhir.resources.R4B import get_fhir_model_class

from mappings.hl7v2 import AckOutcome, MappingResult
from mappings.hl7v2.errors import DuplicateKeyIdentifier


class MemorySink:
    """Duplicate detection as the pipeline does it (same key + same bytes → stored ACK, else AE 205),
    every committed Bundle validated with the FHIR R4B models, everything kept in lists.

    ``fail``: ``accept`` raises, as a full disk would.
    """

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.committed: list[MappingResult] = []
        self.kept: list[tuple[str | None, bytes, bytes | None, AckOutcome]] = []
        self.accepted: dict[str, tuple[str, bytes | None]] = {}

    def _accepted_copy(self, key: str | None, raw: bytes) -> bytes | None:
        if key not in self.accepted:
            return None
        digest, ack = self.accepted[key]
        if digest != hashlib.sha256(raw).hexdigest():
            raise DuplicateKeyIdentifier(f"control id {key!r} was already used for another message")
        return ack or b""

    async def accept(self, key: str, raw: bytes, result: MappingResult, ack: bytes | None) -> bytes | None:
        if (stored := self._accepted_copy(key, raw)) is not None:
            return stored
        if self.fail:
            raise OSError("disk full")
        if result.bundle is not None:
            get_fhir_model_class("Bundle").model_validate(result.bundle)
            for entry in result.bundle["entry"]:
                get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
        self.committed.append(result)
        self.kept.append((key, raw, ack, AckOutcome.ACCEPT))
        self.accepted[key] = (hashlib.sha256(raw).hexdigest(), ack)
        return None

    async def refuse(self, key: str | None, raw: bytes, ack: bytes | None, outcome: AckOutcome) -> bytes | None:
        try:
            if (stored := self._accepted_copy(key, raw)) is not None:
                return stored
        except DuplicateKeyIdentifier:
            pass  # another message had this key: this one is refused all the same
        self.kept.append((key, raw, ack, outcome))
        return None

    def outcomes(self) -> list[AckOutcome]:
        return [entry[3] for entry in self.kept]
