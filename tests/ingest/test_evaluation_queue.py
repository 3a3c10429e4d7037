"""The evaluation queue: receivers do not wait for evaluation, bursts are batched, one failing study
does not stop the others, and studies left unevaluated by a stopped process are found again."""

from __future__ import annotations

import threading
import time

from fhir_server.ingest.evaluation_queue import EvaluationQueue, studies_to_evaluate
from fhir_server.service import FhirService


def test_batches_deduplicates_and_isolates_failures() -> None:
    calls: list[list[str]] = []
    release = threading.Event()

    def evaluate(batch: list[str]) -> None:
        release.wait(5)
        calls.append(list(batch))
        if "bad" in batch:
            raise ValueError("broken study")

    queue = EvaluationQueue(evaluate, max_batch=10, quiet=0.05)
    queue.start()
    for study in ["a", "b", "a", "bad", "c"]:
        queue.submit(study)  # returns at once even though evaluation is blocked
    release.set()
    assert queue.drain(timeout=10)
    queue.stop()
    evaluated = [s for batch in calls for s in batch]
    assert calls[0] == ["a", "b", "bad", "c"]  # one batch, "a" once
    assert {"a", "b", "c"} <= set(evaluated[4:])  # after the batch failed, each study on its own


def test_studies_changed_since_the_last_evaluation_are_found(service: FhirService) -> None:
    study = {"resourceType": "ImagingStudy", "status": "available", "subject": {"reference": "Patient/p"}}
    first = service.update("ImagingStudy", "s1", {**study, "id": "s1"})
    assert studies_to_evaluate(service) == ["s1"]  # nothing evaluated yet: everything
    time.sleep(0.01)  # _lastUpdated search has millisecond precision: keep the writes apart
    service.update("Observation", "eval-1", {
        "resourceType": "Observation", "id": "eval-1", "status": "final", "code": {"text": "evaluation"},
        "identifier": [{"system": "urn:dacs:evaluation", "value": "s1/effective-dose"}]})
    assert studies_to_evaluate(service) == []
    time.sleep(0.01)
    service.update("ImagingStudy", "s2", {**study, "id": "s2"})
    assert studies_to_evaluate(service) == ["s2"] and first.stored.id == "s1"


def test_evaluation_process_evaluates_and_drains(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fhir_server.ingest.evaluation_process import EvaluationProcess
    from fhir_server.settings import Settings
    from fhir_server.storage import open_store

    settings = Settings(data_dir=tmp_path)
    store = open_store(settings.store_url())
    service = FhirService(store, settings)
    service.update("Patient", "p", {"resourceType": "Patient", "id": "p", "birthDate": "1970-01-01"})
    service.update("ImagingStudy", "s", {"resourceType": "ImagingStudy", "id": "s", "status": "available",
                                         "subject": {"reference": "Patient/p"}})
    worker = EvaluationProcess(settings)
    worker.start()
    try:
        worker.submit("s")
        assert worker.drain(timeout=120)
        records = service.search("Observation", [("identifier", "urn:dacs:evaluation|")]).page.resources
        assert records and all(r.resource()["identifier"][0]["value"].startswith("s/") for r in records)
    finally:
        worker.stop()
        store.close()
