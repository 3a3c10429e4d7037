"""The MLLP handler for RIS messages: parse and map → duplicate check and commit → ACK.

This is the one place where HL7 v2 processing outcomes become ACK codes (STYLE.md: "exceptions become
statuses in exactly one place per protocol"). What is stored, and how, belongs to the pipeline, which
plugs in as an :class:`Hl7Sink` with two hooks, each of which first looks for an earlier accepted
copy of the message (the same MSH-3+MSH-4+MSH-10 and the same bytes): if there is one, its stored ACK
is returned and nothing else happens.

* ``accept(key, raw, result, ack)`` — write ``result.bundle`` (and apply ``result.repoints``) and keep
  ``raw`` with its ``ack``, durably and together, before the ACK is sent. It raises
  DuplicateKeyIdentifier (AE 205) when the key was accepted before with other bytes. If it raises
  anything else, the message is answered AR 207 (the RIS should send it again; the conditional
  upserts make a second application harmless) and nothing is acknowledged as accepted.
* ``refuse(key, raw, ack, outcome)`` — keep a message that was not accepted with the ACK it got, for
  inspection.

Without a sink (tests, benchmarks) messages are parsed, mapped and acknowledged without being stored.
An MLLP block holding an FHS/BHS batch, or several MSH, is answered with a batch acknowledgement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from integrations.mllp.server import UnidentifiableMessage
from mappings.hl7v2 import (
    AckOutcome,
    ApplicationInternalError,
    Hl7Error,
    MappingOptions,
    MappingResult,
    MessageHeader,
    build_ack,
    build_batch_ack,
    build_reject,
    duplicate_key,
    map_message,
    parse_message,
    split_messages,
)

log = logging.getLogger(__name__)


class Hl7Sink(Protocol):
    """Where messages go: stored, remembered and kept (implemented by the pipeline; see module docstring).

    Both hooks return None when they processed the message, or the ACK stored for an earlier accepted
    copy of it (``b""`` when that copy asked for none).
    """

    async def accept(self, key: str, raw: bytes, result: MappingResult, ack: bytes | None) -> bytes | None:
        """Commit the mapped message and keep ``raw`` with its ``ack`` (None: the message asked for none).

        Raises :class:`mappings.hl7v2.errors.DuplicateKeyIdentifier` when a message accepted under the
        same key had other bytes.
        """
        ...

    async def refuse(self, key: str | None, raw: bytes, ack: bytes | None, outcome: AckOutcome) -> bytes | None:
        """Keep a message that was not accepted (``key`` is None when no MSH could be read)."""
        ...


@dataclass(frozen=True)
class Receipt:
    """What happened to one message: its duplicate key, outcome, ACK, mapping and error.

    ``duplicate`` is True when the stored ACK of an earlier identical message was returned. ``dacs
    import`` can count imported (ACCEPT, not duplicate), skipped (duplicate) and rejected (the others).
    """

    key: str | None
    outcome: AckOutcome
    ack: bytes | None
    result: MappingResult | None = None
    error: Hl7Error | None = None
    duplicate: bool = False


class Hl7Receiver:
    """``async (raw message) -> ACK bytes`` for :class:`integrations.mllp.server.MllpServer`.

    Parameters
    ----------
    sink
        Duplicate detection, durable write and keeping of messages (see module docstring); None =
        acknowledge without storing.
    options
        Mapping options (time zone of the RIS, local URI base).
    application, facility
        Names DACS uses in ACKs when the message did not name its receiver (MSH-5/MSH-6).
    """

    def __init__(
        self,
        sink: Hl7Sink | None = None,
        *,
        options: MappingOptions | None = None,
        application: str = "DACS",
        facility: str = "",
    ) -> None:
        self.sink = sink
        self.options = options or MappingOptions()
        self.application = application
        self.facility = facility

    async def __call__(self, raw: bytes) -> bytes | None:
        """Answer one MLLP block: a single message, or a batch (FHS/BHS or several MSH)."""
        if raw.lstrip()[:3] in (b"FHS", b"BHS") or raw.count(b"MSH") > 1:
            batch = split_messages(raw)
            if batch.is_batch or len(batch.messages) > 1:
                for warning in batch.warnings:
                    log.warning("HL7 batch: %s", warning)
                acks = [ack for m in batch.messages if (ack := await self.receive(m))]
                return build_batch_ack(batch.batch_header or batch.file_header, acks)
        return await self.receive(raw)

    def _ack(self, header: MessageHeader, outcome: AckOutcome, error: Hl7Error | None = None) -> bytes | None:
        return build_ack(header, outcome, error, application=self.application, facility=self.facility)

    async def receive(self, raw: bytes) -> bytes | None:
        """Process one message and return its ACK (None when its enhanced ACK mode asks for none).

        Raises
        ------
        UnidentifiableMessage
            When the bytes hold no MSH, so no ACK can be addressed (the server closes the connection).
        """
        receipt = await self.process(raw)
        if receipt.ack is None and receipt.key is None:
            message = receipt.error.message if receipt.error else "no MSH segment"
            raise UnidentifiableMessage(f"no MSH segment: {message}")
        return receipt.ack

    async def process_many(self, messages: Sequence[bytes], window: int = 32) -> list[Receipt]:
        """Process messages from a file (``dacs import``), up to ``window`` at a time; receipts in order.

        Each message is parsed, mapped and handed to the sink before the next one starts, so a sink
        that commits in the order it is handed messages (the pipeline's group commit does) applies
        them in file order, while many share one commit.
        """
        receipts: list[Receipt] = []
        for start in range(0, len(messages), window):
            receipts += await asyncio.gather(*(self.process(m) for m in messages[start:start + window]))
        return receipts

    async def process(self, raw: bytes) -> Receipt:
        """Process one message (MLLP or ``dacs import``); never raises, the outcome is in the Receipt."""
        header: MessageHeader | None = None
        key: str | None = None
        try:
            message = parse_message(raw)
            header = message.header
            key = duplicate_key(header)
            result = map_message(message, self.options)
        except Hl7Error as exc:
            return await self._refuse(raw, header, key, exc)
        except Exception as exc:  # a mapping bug must not take the listener down
            log.exception("HL7 %s: mapping failed", key)
            error = ApplicationInternalError(f"internal error while mapping ({type(exc).__name__})")
            return await self._refuse(raw, header, key, error)
        for warning in result.warnings:
            log.info("HL7 %s %s: %s", result.message_type, result.control_id, warning)
        ack = self._ack(result.header, AckOutcome.ACCEPT)
        try:
            stored = await self.sink.accept(key, raw, result, ack) if self.sink is not None else None
        except Hl7Error as exc:  # the key was accepted before with other content
            return await self._refuse(raw, header, key, exc, result)
        except Exception as exc:
            log.exception("HL7 %s: commit failed", key)
            error = ApplicationInternalError(
                f"the message could not be stored ({type(exc).__name__}); send it again", retryable=True
            )
            return await self._refuse(raw, header, key, error, result)
        if stored is not None:
            return self._duplicate(key, stored)
        return Receipt(key, AckOutcome.ACCEPT, ack, result)

    @staticmethod
    def _duplicate(key: str | None, stored: bytes) -> Receipt:
        log.info("HL7 %s: duplicate of an earlier message, answered with the stored ACK", key)
        return Receipt(key, AckOutcome.ACCEPT, stored or None, duplicate=True)

    async def _refuse(
        self, raw: bytes, header: MessageHeader | None, key: str | None, error: Hl7Error,
        result: MappingResult | None = None,
    ) -> Receipt:
        if header is not None:
            ack = self._ack(header, error.outcome, error)
        else:
            ack = build_reject(raw, error, application=self.application, facility=self.facility)
        if self.sink is not None:
            try:
                stored = await self.sink.refuse(key, raw, ack, error.outcome)
            except Exception:
                log.exception("HL7 %s: keeping a refused message failed", key)
            else:
                if stored is not None:  # an earlier copy was accepted: answer as then
                    return self._duplicate(key, stored)
        log.warning("HL7 %s: %s %d: %s", key, error.outcome.value, error.code, error.message)
        return Receipt(key, error.outcome, ack, result, error)
