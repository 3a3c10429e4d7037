"""Asyncio MLLP listener: persistent connections, ordered answers, bounded size, time and concurrency.

Written instead of using ``hl7apy.mllp``, which was measured to handle one message per connection, lose
pipelined messages, crash on non-UTF-8 bytes and read quadratically (reference §1.6). The server only
frames: the handler gets one message's bytes and returns the ACK's bytes, so parsing, charset handling,
storing and ACK content all live in the handler (:class:`integrations.mllp.handler.Hl7Receiver`).

Per connection, messages are handled one after the other and answered in the order they arrived, so a
client may pipeline. Bad framing (see :mod:`integrations.mllp.framing`) is answered with an AR when an
MSH can be found in the bytes involved; otherwise the connection is closed with a log line. The
listener itself never stops on bad input: each connection's errors end at most that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

from integrations.mllp.framing import Frame, FramingError, MllpDecoder, frame
from mappings.hl7v2 import ApplicationInternalError, build_reject

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Awaitable[bytes | None]]
"""Gets one message (no framing), returns the raw ACK to send (None or b"" sends nothing)."""

Rejecter = Callable[[bytes, str], bytes | None]
"""Builds an AR for bytes that could not be handled (bad framing, handler crash), or None if no MSH."""

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_CONNECTIONS = 64
READ_SIZE = 65536


def reject_with_ar(raw: bytes, reason: str) -> bytes | None:
    """Default :data:`Rejecter`: AR with ERR code 207 (the sender should send again, correctly)."""
    return build_reject(raw, ApplicationInternalError(reason, retryable=True))


def _quickack(writer: asyncio.StreamWriter) -> None:
    """Ask Linux to ACK the next segment at once (not sticky, so set before each read).

    Senders that keep Nagle on and write a message in pieces otherwise wait for our delayed ACK
    (~40 ms per message); measured for DICOM senders in the reference document §0.6.
    """
    sock = writer.get_extra_info("socket")
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if sock is not None and quickack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


class UnidentifiableMessage(Exception):
    """Raised by a handler for a frame it cannot answer (no MSH): the server closes the connection."""


class MllpServer:
    """An MLLP (HL7 v2) listener on asyncio.

    Parameters
    ----------
    handler
        ``async (message bytes) -> ACK bytes``; called once per well-framed message, in order.
    host, port
        Where to listen; port 0 picks a free port (returned by :meth:`start`).
    max_message_bytes
        Largest accepted message (default 4 MiB); a larger one is discarded and answered with an AR.
    idle_timeout
        Seconds without data before a connection is closed (also bounds waiting for a free slot).
    max_connections
        Connections served at once; further ones wait (unread) for a slot.
    ssl_context
        Server-side TLS context, or None for plain TCP.
    reject
        Builds the AR for bad framing and handler failures (default: :func:`reject_with_ar`).
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 2575,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        ssl_context: ssl.SSLContext | None = None,
        reject: Rejecter = reject_with_ar,
    ) -> None:
        if max_message_bytes < 1 or max_connections < 1 or idle_timeout <= 0:
            raise ValueError("max_message_bytes, max_connections and idle_timeout must be positive")
        self.handler = handler
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.ssl_context = ssl_context
        self.reject = reject
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(max_connections)
        self._connections: dict[asyncio.Task[None], bool] = {}  # task -> busy handling a message
        self._closing = False

    @property
    def bound_port(self) -> int:
        """The port actually listened on (after :meth:`start`)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> int:
        """Start listening; returns the bound port."""
        self._closing = False
        self._server = await asyncio.start_server(
            self._serve,
            self.host,
            self.port,
            ssl=self.ssl_context,
            ssl_handshake_timeout=self.idle_timeout if self.ssl_context else None,
            reuse_address=True,
        )
        port = self.bound_port
        log.info("MLLP listening on %s:%d%s", self.host, port, " (TLS)" if self.ssl_context else "")
        return port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, close idle connections, let busy ones finish their message (up to ``grace`` s)."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task, busy in list(self._connections.items()):
            if not busy:
                task.cancel()
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MllpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = False
        peer = writer.get_extra_info("peername")
        try:
            try:
                await asyncio.wait_for(self._slots.acquire(), self.idle_timeout)
            except TimeoutError:
                log.warning("MLLP %s: no free connection slot within %ss; closing", peer, self.idle_timeout)
                return
            try:
                await self._converse(reader, writer, peer, task)
            finally:
                self._slots.release()
        except asyncio.CancelledError:
            log.info("MLLP %s: connection closed by server shutdown", peer)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("MLLP %s: connection lost: %s", peer, exc)
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object,
        task: asyncio.Task[None],
    ) -> None:
        decoder = MllpDecoder(self.max_message_bytes)
        log.debug("MLLP %s: connected", peer)
        while not self._closing:
            _quickack(writer)
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), self.idle_timeout)
            except TimeoutError:
                for err in decoder.finish("idle timeout"):
                    await self._answer_error(err, writer, peer)
                log.info("MLLP %s: idle for %ss; closing", peer, self.idle_timeout)
                return
            if not data:
                for err in decoder.finish("end of connection"):
                    log.warning("MLLP %s: %s; %d bytes dropped", peer, err.reason, len(err.data))
                log.debug("MLLP %s: closed by peer", peer)
                return
            for event in decoder.feed(data):
                self._connections[task] = True
                try:
                    if isinstance(event, Frame):
                        keep_open = await self._handle(event.payload, writer, peer)
                    else:
                        keep_open = await self._answer_error(event, writer, peer)
                finally:
                    self._connections[task] = False
                if not keep_open:
                    return

    async def _handle(self, payload: bytes, writer: asyncio.StreamWriter, peer: object) -> bool:
        """Run the handler and send its answer; False when the message could not be answered at all."""
        try:
            response = await self.handler(payload)
        except Exception as exc:
            if isinstance(exc, UnidentifiableMessage):
                log.warning("MLLP %s: %s (first bytes %r); closing", peer, exc, payload[:40])
                return False
            log.exception("MLLP %s: handler failed on a %d-byte message", peer, len(payload))
            response = self.reject(payload, "application internal error while processing the message")
            if response is None:
                log.warning("MLLP %s: no MSH to answer the failed message; closing", peer)
                return False
        if response:
            writer.write(frame(response))
            await writer.drain()
        return True

    async def _answer_error(self, err: FramingError, writer: asyncio.StreamWriter, peer: object) -> bool:
        """Answer bad framing with an AR if the message can be identified; False = close the connection."""
        try:
            ack = self.reject(err.data, f"MLLP framing error: {err.reason}")
        except Exception:
            log.exception("MLLP %s: building the AR for a framing error failed", peer)
            ack = None
        if ack is None:
            log.warning("MLLP %s: %s, no MSH to answer (first bytes %r); closing",
                        peer, err.reason, err.data[:40])
            return False
        log.warning("MLLP %s: %s; answered AR", peer, err.reason)
        writer.write(frame(ack))
        await writer.drain()
        return not err.fatal
