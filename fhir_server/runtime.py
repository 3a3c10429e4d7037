"""The composition root: one store, service, archive and ingest pipelines per DACS process.

``dacs serve`` and ``dacs import`` build a :class:`Runtime` from the settings and hand its parts to
the HTTP app and the receivers, so every way in shares the same store and pipelines.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from fhir_server.archive import Archive, open_archive
from fhir_server.evaluation import DoseEvaluator
from fhir_server.ingest.dicom import DicomPipeline, map_object
from fhir_server.ingest.evaluation_process import EvaluationProcess
from fhir_server.ingest.evaluation_queue import EvaluationQueue
from fhir_server.ingest.hl7 import Hl7Pipeline
from fhir_server.service import FhirService
from fhir_server.settings import Settings
from fhir_server.storage import Store, open_store
from fhir_server.workers import exit_with_parent


@dataclass
class Runtime:
    settings: Settings
    store: Store
    service: FhirService
    archive: Archive
    hl7: Hl7Pipeline
    dicom: DicomPipeline
    evaluator: DoseEvaluator
    evaluation: EvaluationQueue | EvaluationProcess

    pool: ProcessPoolExecutor | None = None

    @classmethod
    def open(cls, settings: Settings, *, mapping_processes: int = 0, evaluation_process: bool = False) -> Runtime:
        """Open the store and the pipelines. ``mapping_processes`` > 0 maps DICOM objects in that many
        worker processes and ``evaluation_process`` evaluates in another (``dacs serve``: receiving,
        archiving and committing stay in this one; only for stores several processes can share)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings.store_url())
        service = FhirService(store, settings)
        archive = open_archive(store, settings.data_dir)
        evaluator = DoseEvaluator(service)
        evaluation: EvaluationQueue | EvaluationProcess
        if evaluation_process and not settings.store_url().startswith("mongomock:"):
            # the server's evaluator; it also finds the studies a previous run left unevaluated
            evaluation = EvaluationProcess(settings)
        else:  # the commands (import, remap …) evaluate only what they ingest
            evaluation = EvaluationQueue(evaluator.evaluate_studies)
        evaluation.start()
        pool = None
        if mapping_processes > 0:
            pool = ProcessPoolExecutor(mapping_processes, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=exit_with_parent)
            pool.submit(map_object, b"", settings.timezone, None).result()  # load the modules now, not at 1st C-STORE
        dicom = DicomPipeline(service, archive, timezone=settings.timezone, evaluate=evaluation.submit, pool=pool)
        return cls(settings, store, service, archive, Hl7Pipeline(service, archive), dicom, evaluator, evaluation,
                   pool)

    def close(self, drain_timeout: float | None = None) -> None:
        """Finish queued writes and evaluations (waiting at most ``drain_timeout`` s for these), then
        release the store. Evaluations still queued then are found again when a server starts."""
        self.hl7.close()
        if self.pool is not None:
            self.pool.shutdown()
        self.evaluation.drain(drain_timeout)
        self.evaluation.stop()
        self.store.close()
