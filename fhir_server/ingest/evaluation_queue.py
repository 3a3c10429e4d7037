"""Dose evaluation after ingest, off the receivers' path.

A dose report is acknowledged (C-STORE success, HL7 AA) as soon as its resources are committed;
evaluating it (DRLs, thresholds, cumulative dose, repeats) is derived work that can always be
redone, so receivers only queue the study here. One worker thread evaluates what is queued in
batches (one transaction per batch, and a patient's studies in one batch see each other). Ingest has
priority: while reports keep arriving the worker waits (for a pause of ``quiet`` seconds), unless
the batch is full or the oldest study has waited ``max_delay`` seconds, which bounds how late an
alert can be. So a burst from the modalities is received at full speed and evaluated right after.

Nothing derived is lost if the process stops with studies still queued: :func:`studies_to_evaluate`
lists every study changed since the newest evaluation record, and the server's evaluation process
queues them at start-up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fhir_server.evaluation.records import EVALUATION_SYSTEM
from fhir_server.service import FhirService

log = logging.getLogger("dacs.evaluation")


class EvaluationQueue:
    """A de-duplicating queue of ImagingStudy ids and the worker that evaluates them."""

    def __init__(self, evaluate_batch: Callable[[list[str]], Any], *, max_batch: int = 100,
                 quiet: float = 0.3, max_delay: float = 5.0) -> None:
        self._evaluate_batch = evaluate_batch
        self._max_batch = max_batch
        self._quiet = quiet
        self._max_delay = max_delay
        self._pending: dict[str, float] = {}  # study id -> when first queued (insertion-ordered)
        self._last_submit = 0.0
        self._busy = False
        self._stopping = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, study_id: str) -> None:
        """Queue a study (again); returns at once."""
        with self._cond:
            now = time.monotonic()
            self._pending.setdefault(study_id, now)
            self._last_submit = now
            self._cond.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dacs-evaluation", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress and stop (what is still queued is found again at start-up)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                while not self._ready():
                    self._cond.wait(self._quiet / 3)
                batch = list(self._pending)[: self._max_batch]
                for study_id in batch:
                    del self._pending[study_id]
                self._busy = True
            try:
                self._evaluate(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _ready(self) -> bool:
        """Whether to evaluate now: stopping, a full batch, a pause in arrivals, or a study waited long."""
        now = time.monotonic()
        oldest = next(iter(self._pending.values()), now)
        return (self._stopping or len(self._pending) >= self._max_batch or now - self._last_submit >= self._quiet
                or now - oldest >= self._max_delay)

    def _evaluate(self, batch: list[str]) -> None:
        try:
            self._evaluate_batch(batch)
        except Exception:
            if len(batch) == 1:
                log.exception("evaluation of ImagingStudy/%s failed", batch[0])
                return
            for study_id in batch:  # one bad study must not stop the others' evaluation
                try:
                    self._evaluate_batch([study_id])
                except Exception:
                    log.exception("evaluation of ImagingStudy/%s failed", study_id)


def studies_to_evaluate(service: FhirService) -> list[str]:
    """ImagingStudies changed since the newest evaluation record (all of them if none exists)."""
    newest = service.search("Observation", [("identifier", f"{EVALUATION_SYSTEM}|"), ("_sort", "-_lastUpdated"),
                                            ("_count", "1"), ("_total", "none")]).page.resources
    return all_study_ids(service, [("_lastUpdated", f"ge{newest[0].last_updated}")] if newest else [])


def all_study_ids(service: FhirService, query: list[tuple[str, str]] | None = None) -> list[str]:
    """Ids of the ImagingStudies matching ``query`` (all of them by default), oldest change first."""
    ids: list[str] = []
    offset = 0
    query = query or []
    while True:
        page = service.search("ImagingStudy", [*query, ("_sort", "_lastUpdated"), ("_count", "1000"),
                                               ("_offset", str(offset)), ("_total", "none")]).page.resources
        ids.extend(r.id for r in page)
        if len(page) < 1000:
            return ids
        offset += 1000
