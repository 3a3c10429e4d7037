"""Low-latency transport for pynetdicom associations (the fix for pydicom/pynetdicom#917).

Why a stock pynetdicom 3.0.4 SCP manages only ~21 C-STOREs per second on one association
-------------------------------------------------------------------------------------------
Measured here (loopback, 2 cores, 25 KB CT RDSR): 20.4/s with pynetdicom's SCU, 100 files in 4.7 s
with DCMTK ``storescu``; strace of ``storescu`` shows each C-STORE-RSP arriving ~45 ms after the
last data-set write, while the SCP sends it in one ``sendto`` as soon as it has the data set. The
latency is TCP, not Python:

* Both clients write each PDU as separate small ``send()`` calls (DCMTK even writes the 12-byte
  PDU/PDV header and the PDV data separately) and neither sets ``TCP_NODELAY``, so **Nagle's
  algorithm on the client** holds the last segment of the request until the earlier ones are ACKed.
* The SCP's kernel is in delayed-ACK ("pingpong") mode because the connection is interactive, so
  it ACKs only when its **delayed-ACK timer** fires (40 ms minimum on Linux) — it has nothing to
  send until it has the whole request.
* One ~40 ms stall per message → ~21 messages/s whatever the CPU (strace of ``storescu``: the
  response's first 6 bytes are read, then ~45 ms pass before the rest). Setting ``TCP_NODELAY``
  on the *accepted* socket changes nothing (the SCP's single response write is not what is held back),
  which is why earlier attempts concluded "not Nagle".

The fix on the receiving side is ``TCP_QUICKACK`` (Linux): ACK at once instead of delaying. The
kernel leaves quick-ACK mode again after the SCP sends, so it is re-armed before every ``recv``;
setting it also flushes an ACK that is already pending.

Two smaller costs remain in pynetdicom's polling design and are reduced here:

* The DUL reactor thread sleeps 1 ms (``DULServiceProvider._run_loop_delay``) whenever a loop
  found nothing to do, so incoming PDUs wait up to 1 ms each, and it wakes 1,000 times a second
  per association even when idle. :class:`LowLatencySocket` makes the reactor wait *in*
  ``select()`` instead, on the socket and on a wake-up socket pair that every primitive queued for
  sending and every state-machine event writes to (the DUL's two work queues are replaced by
  :class:`_WakingQueue`), so it wakes exactly when there is work and otherwise only every
  ``IDLE_WAIT_S`` to look at its timers (the loop delay is set to 0). Measured: four idle
  associations cost 26 % of a core before, 12 % after (what remains is the association reactor
  below); DACS end to end at four associations went from 0.45–0.47 to 0.58–0.64 of the bare SCP
  (one association: 1.3–1.4 → 1.6–1.85), because the pipeline is CPU-bound and the polling
  threads competed for the GIL.
* pynetdicom's "standard" log handlers format every PDU and DIMSE message and copy the whole data
  set once per C-STORE (``msg.data_set.getvalue()`` in ``_recv_c_store_rq``) even when the log
  level discards the result; :class:`LowLatencyRequestHandler` unbinds them from each association
  and :mod:`integrations.dicom.listener` logs one line per object itself.

Measured (DCMTK ``storescu``, one association, 25 KB CT RDSR, server-side rate, callback doing
nothing; three runs on a shared 2-core machine): stock 21/21/20 stores/s; ``TCP_QUICKACK`` alone
208/197/177; plus the select wake-up 214/216/204; plus unbinding the log handlers 225/213/199. The
server's CPU per store fell from ~5.6 ms (spinning through ~90 idle 1 ms loops per 40 ms stall) to
~2.3 ms. ``TCP_QUICKACK`` is the fix; the other two are within this machine's noise, and at these
rates DCMTK's own parsing of each file is a large share of the time. With a write+fsync callback,
``benchmarks/bench_dicom_scp.py`` gives ~135 stores/s against the bare SCP's ~20 (one association)
and ~170 against ~75 (four). Large objects are client-bound: ten 3.3 MB fluoroscopy reports took
4 s, 0.4 s of it server CPU.

Not changed: the association reactor still polls its DIMSE queue every 1 ms
(``Association._run_reactor``, ≈ 3 % of a core per idle association); patching it would mean
copying that method. Upstream context:
pydicom/pynetdicom#917 (DCMTK ``storescu`` → pynetdicom ≈20–22 files/s), #684, #620, #531.

The patch is narrow: it applies only to associations accepted by a server created with
:class:`LowLatencyRequestHandler`, by changing the class of pynetdicom's own ``AssociationSocket``
for that connection; nothing global is modified. Platforms without ``TCP_QUICKACK`` (macOS,
Windows) get only the select-based wake-up and keep the stall, unless the modality disables Nagle.
"""

from __future__ import annotations

import contextlib
import queue
import select
import socket
import ssl
from typing import Any, cast

from pynetdicom import _handlers, evt
from pynetdicom.association import Association
from pynetdicom.transport import AssociationSocket, RequestHandler

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
# Longest the DUL reactor waits in select() before re-checking its timers. Incoming data and
# outgoing primitives (the association thread's responses) wake it at once, so this only bounds
# how late a timer (ARTIM, tens of seconds) or a stop request is noticed.
IDLE_WAIT_S = 0.05
_RECV_CHUNK = 1 << 20  # read up to 1 MiB per syscall (pynetdicom reads 4 KiB)
# pynetdicom's "standard" logging handlers, bound to every association by default.
_PER_MESSAGE_LOG_HANDLERS = (
    (evt.EVT_DIMSE_RECV, _handlers.standard_dimse_recv_handler),
    (evt.EVT_DIMSE_SENT, _handlers.standard_dimse_sent_handler),
    (evt.EVT_PDU_RECV, _handlers.standard_pdu_recv_handler),
    (evt.EVT_PDU_SENT, _handlers.standard_pdu_sent_handler),
)


class _WakingQueue(queue.Queue):  # type: ignore[type-arg]
    """One of the DUL's work queues (primitives to send, state-machine events): putting an item also
    wakes the reactor from its select()."""

    def __init__(self, wake: socket.socket) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            self._wake.send(b"\0")


class LowLatencySocket(AssociationSocket):
    """pynetdicom's association socket, ACKing at once and waking the reactor on incoming data
    and on outgoing primitives."""

    _wake: socket.socket | None = None  # the reactor's end of the wake-up pair

    def _wake_on_work(self, dul: Any) -> None:
        """Make every primitive queued for sending and every state-machine event wake the reactor.

        The reactor handles one item per loop and checks the socket in between; ``ready`` does not
        wait while either queue holds something, and a put from another thread ends a wait.
        """
        self._wake, waker = socket.socketpair()
        self._wake.setblocking(False)
        waker.setblocking(False)
        for name in ("to_provider_queue", "event_queue"):
            pending, replacement = getattr(dul, name), _WakingQueue(waker)
            while not pending.empty():
                replacement.put(pending.get_nowait())
            setattr(dul, name, replacement)

    def _idle(self) -> bool:
        dul = self.assoc.dul
        return dul.to_provider_queue.empty() and dul.event_queue.empty()

    def _arm_quickack(self) -> None:
        if _QUICKACK is not None and self.socket is not None:
            # OSError: not a TCP socket, or already closed
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    @property
    def ready(self) -> bool:
        """True if data can be read; waits for it (pynetdicom polls with 0) until the reactor has
        other work (a primitive to send, an event) or ``IDLE_WAIT_S`` has passed."""
        if self.socket is None or self._is_connected is False:
            return False
        if isinstance(self.socket, ssl.SSLSocket) and self.socket.pending():
            return True
        if self._wake is None:  # no wake-up pair: poll the way pynetdicom's loop delay would
            waits, timeout = [self.socket], 0.001
        else:
            waits, timeout = [self.socket, self._wake], IDLE_WAIT_S if self._idle() else 0.0
        try:
            readable, _, _ = select.select(waits, [], [], timeout)
        except (OSError, ValueError):
            self.event_queue.put("Evt17")  # transport connection closed, as pynetdicom does
            return False
        if self._wake is not None and self._wake in readable:
            with contextlib.suppress(OSError):  # drained: nothing more to read
                while self._wake.recv(4096):
                    pass
        return self.socket in readable

    def close(self) -> None:
        super().close()
        if self._wake is not None:
            self._wake.close()

    def recv(self, nr_bytes: int) -> bytearray:
        """Read ``nr_bytes`` (fewer only if the peer closed), re-arming quick ACK before each read."""
        sock = self.socket
        if sock is None:
            return bytearray()
        buffer = bytearray(nr_bytes)
        nr_read = 0
        with memoryview(buffer) as view:
            while nr_read < nr_bytes:
                self._arm_quickack()
                count = sock.recv_into(view[nr_read:], min(nr_bytes - nr_read, _RECV_CHUNK))
                if count == 0:
                    break
                nr_read += count
        del buffer[nr_read:]
        return buffer


class LowLatencyRequestHandler(RequestHandler):
    """Request handler that gives each accepted association a :class:`LowLatencySocket`."""

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        sock = assoc.dul.socket
        if sock is not None and type(sock) is AssociationSocket:
            # Same object and state, different methods: the least intrusive way to change how
            # pynetdicom reads from this one connection.
            sock.__class__ = LowLatencySocket
            cast(LowLatencySocket, sock)._arm_quickack()
            cast(LowLatencySocket, sock)._wake_on_work(assoc.dul)
            # The reactor now waits in select(); an extra sleep would only add latency.
            assoc.dul._run_loop_delay = 0
        for event, handler in _PER_MESSAGE_LOG_HANDLERS:
            assoc.unbind(event, handler)
        return assoc
