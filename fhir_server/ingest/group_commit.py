"""Group commit: the units of work of concurrent receivers made durable by one commit.

A durable SQLite commit costs a WAL sync plus a write of every page the unit touched, and units that
arrive while one is being committed have to wait for it anyway. :class:`GroupCommit` runs submitted
units one after another in one writer thread: all the units waiting are run in one store
transaction, each in its own nested transaction (so one that fails is undone alone), and every unit's
result is reported only after the commit that made it durable. Pages the units share (index pages of
common codes, the tables' last pages) are then written once per group instead of once per unit.

Nothing waits to form a group: a lone RIS connection, waiting for each ACK, gets groups of one. On
MongoDB, which has no savepoints, each unit stays its own transaction (see
:meth:`fhir_server.storage.base.Store.transaction`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fhir_server.storage.base import Store

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Unit(Generic[T]):
    work: Callable[[], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class GroupCommit:
    """Run units of work (synchronous callables that write to ``store``) in groups, one commit each.

    ``max_units`` bounds a group, so that one commit's latency stays bounded under a flood.
    """

    def __init__(self, store: Store, *, max_units: int = 64) -> None:
        self.store = store
        self.max_units = max_units
        self._queue: queue.SimpleQueue[_Unit[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` in the writer thread; its result once it is durably committed (or its exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start()
        self._queue.put(_Unit(work, loop, future))
        return await future

    def _start(self) -> None:
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="dacs-group-commit", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._started:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            units: list[_Unit[Any]] = [first]
            while len(units) < self.max_units:
                try:
                    unit = self._queue.get_nowait()
                except queue.Empty:
                    break
                if unit is None:
                    stopping = True
                    break
                units.append(unit)
            self._commit(units)

    def _commit(self, units: list[_Unit[Any]]) -> None:
        outcomes: list[tuple[_Unit[Any], Any, BaseException | None]] = []
        try:
            with self.store.transaction():
                for unit in units:
                    try:
                        with self.store.transaction():
                            outcomes.append((unit, unit.work(), None))
                    except Exception as exc:  # this unit is undone; the others go on
                        outcomes.append((unit, None, exc))
        except Exception as exc:  # the commit itself failed: nothing of the group is durable
            log.exception("group commit of %d units failed", len(units))
            outcomes = [(unit, None, exc) for unit in units]
        for unit, value, error in outcomes:
            with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is waiting
                unit.loop.call_soon_threadsafe(_settle, unit.future, value, error)
