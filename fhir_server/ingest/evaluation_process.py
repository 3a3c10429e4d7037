"""Dose evaluation in a worker process: another core evaluates while this one receives and commits.

Ingest and evaluation are both CPU-bound Python, so in one process they share one core (the GIL).
``dacs serve`` therefore runs the :class:`~fhir_server.ingest.evaluation_queue.EvaluationQueue` in a
child process with its own connection to the store; receivers hand it study ids through a pipe and
never wait. Each id carries a sequence number and the worker publishes the number up to which
everything is evaluated, so :meth:`EvaluationProcess.drain` (``$dose-summary``) waits for exactly the
evaluations submitted before it. Only for stores several processes can share (SQLite files, MongoDB
servers); an in-memory test store keeps the in-process queue.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import time
from typing import Any

from fhir_server.ingest.evaluation_queue import EvaluationQueue, studies_to_evaluate
from fhir_server.settings import Settings


class EvaluationProcess:
    """The interface of :class:`EvaluationQueue` (start, submit, drain, stop), run in a child process."""

    def __init__(self, settings: Settings) -> None:
        ctx = mp.get_context("spawn")
        self._queue: Any = ctx.Queue()
        self._done: Any = ctx.Value("q", 0)
        self._sent = 0
        self._lock = threading.Lock()
        self._process = ctx.Process(target=_work, args=(settings.model_dump(), self._queue, self._done),
                                    name="dacs-evaluation", daemon=True)

    def start(self) -> None:
        self._process.start()

    def submit(self, study_id: str) -> None:
        with self._lock:
            self._sent += 1
            self._queue.put((self._sent, study_id))

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every study submitted so far is evaluated; False on timeout."""
        target = self._sent
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._done.value < target:
            if not self._process.is_alive() or (deadline is not None and time.monotonic() > deadline):
                return False
            time.sleep(0.01)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        if self._process.is_alive():
            self._queue.put(None)
            self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()


def _work(settings_fields: dict[str, Any], queue: Any, done: Any) -> None:
    """The child process: its own store, service and evaluator, fed by the parent's pipe."""
    from fhir_server.evaluation import DoseEvaluator
    from fhir_server.service import FhirService
    from fhir_server.storage import open_store
    from fhir_server.workers import exit_with_parent

    exit_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(**settings_fields)
    store = open_store(settings.store_url())
    evaluator = DoseEvaluator(FhirService(store, settings))
    lock = threading.Lock()
    pending: dict[str, int] = {}  # study id -> latest sequence number submitted for it
    state = {"received": 0}

    def evaluate(batch: list[str]) -> None:
        with lock:
            taken = {study_id: pending.get(study_id) for study_id in batch}
        try:
            evaluator.evaluate_studies(batch)
        finally:
            with lock:
                for study_id, seq in taken.items():
                    if seq is not None and pending.get(study_id) == seq:
                        del pending[study_id]
                done.value = (min(pending.values()) - 1) if pending else state["received"]

    evaluation = EvaluationQueue(evaluate)
    evaluation.start()
    for study_id in studies_to_evaluate(evaluator.service):  # left over from a previous run
        evaluation.submit(study_id)
    while (item := queue.get()) is not None:
        seq, study_id = item
        with lock:
            pending[study_id] = seq
            state["received"] = seq
        evaluation.submit(study_id)
    evaluation.drain(timeout=60)
    evaluation.stop()
    store.close()
