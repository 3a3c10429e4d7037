"""FHIR server core: validated, indexed writes through transaction Bundles; reads; the patient-history
search at scale (issue "FHIR R4 server core", performance goals).

* writes: 100-entry transaction Bundles (10 Patients + 90 dose Observations linked by ``urn:uuid``)
  through the Bundle processor on a fresh SQLite store — validation, reference rewriting, indexing,
  one durable commit per Bundle. Baseline: fhir.resources R4B validation alone of the same resources
  (the floor: a server that validates cannot be faster).
* reads: ``FhirService.read`` of random Observations; baseline: the raw SQLite ``SELECT body``.
* patient history: ``Observation?patient=…&code=…&_sort=-date&_count=50`` at 1,000,000 Observations
  (2,000 patients × 500), full service path including the searchset Bundle bytes; baseline: a
  hand-written SQL query returning the same 50 rows. The data set is built once and cached in
  ``benchmarks/.cache`` (it takes a few minutes).
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import orjson
from fhir.resources.R4B import get_fhir_model_class

from benchmarks import Result, latencies_ms, p95
from fhir_server.api.responses import searchset
from fhir_server.bundle import BundleProcessor
from fhir_server.search.index import index_entries
from fhir_server.service import FhirService, now_instant
from fhir_server.settings import Settings
from fhir_server.storage.base import Write
from fhir_server.storage.sqlite import SQLiteStore

CACHE = Path(__file__).parent / ".cache"
LOINC, DCM, UCUM = "http://loinc.org", "http://dicom.nema.org/resources/ontology/DCM", "http://unitsofmeasure.org"
CODES = ["73569-6", "113813", "113830", "113722"]
SCHEMA_TAG = "v1"


def dose_observation(subject: str, when: str, dlp: float) -> dict:
    return {"resourceType": "Observation", "status": "final",
            "meta": {"profile": ["http://hl7.org/fhir/uv/radiation-dose-summary/StructureDefinition/"
                                 "radiation-dose-summary"]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "imaging"}]}],
            "code": {"coding": [{"system": LOINC, "code": "73569-6", "display": "Radiation exposure"}]},
            "subject": {"reference": subject}, "effectiveDateTime": when,
            "component": [
                {"code": {"coding": [{"system": DCM, "code": "113813", "display": "DLP Total"}]},
                 "valueQuantity": {"value": dlp, "unit": "mGy.cm", "system": UCUM, "code": "mGy.cm"}},
                {"code": {"coding": [{"system": DCM, "code": "113830", "display": "Mean CTDIvol"}]},
                 "valueQuantity": {"value": round(dlp / 30, 2), "unit": "mGy", "system": UCUM, "code": "mGy"}}]}


def transaction_bundle(rng: random.Random) -> dict:
    entries = []
    patients = [f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}" for _ in range(10)]
    for urn in patients:
        entries.append({"fullUrl": urn, "resource": {"resourceType": "Patient", "gender": "female",
                                                     "name": [{"family": "Bench", "given": ["A"]}],
                                                     "identifier": [{"system": "urn:dacs:bench", "value": urn[9:]}]},
                        "request": {"method": "POST", "url": "Patient"}})
    for i in range(90):
        obs = dose_observation(patients[i % 10], f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
                               rng.uniform(100, 2000))
        entries.append({"resource": obs, "request": {"method": "POST", "url": "Observation"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def bench_writes(tmp: Path, bundles: int) -> list[Result]:
    rng = random.Random(7)
    data = [transaction_bundle(rng) for _ in range(bundles)]
    store = SQLiteStore(tmp / "writes.sqlite3")
    processor = BundleProcessor(FhirService(store, Settings(data_dir=tmp)))
    start = time.perf_counter()
    for bundle in data:
        processor.process(bundle)
    ours = bundles * 100 / (time.perf_counter() - start)
    store.close()
    start = time.perf_counter()
    for bundle in data:
        for entry in bundle["entry"]:
            get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    validation_only = bundles * 100 / (time.perf_counter() - start)
    return [Result("FHIR core", "transaction Bundles, SQLite (validated+indexed+durable)", ours, "res/s",
                   "fhir.resources validation alone", validation_only, goal=1000)]


def build_history_db(path: Path, patients: int, per_patient: int) -> None:
    """1,000,000 (at scale 1) dose Observations written through the store with real index entries."""
    tmp = path.with_suffix(".partial")
    if tmp.exists():
        tmp.unlink()
    store = SQLiteStore(tmp)
    rng = random.Random(11)
    now = now_instant()
    batch: list[Write] = []
    for p in range(patients):
        pid = f"p{p}"
        patient = {"resourceType": "Patient", "id": pid, "name": [{"family": f"Fam{p}"}],
                   "meta": {"versionId": "1", "lastUpdated": now}}
        batch.append(Write("Patient", pid, 1, now, "PUT", patient, orjson.dumps(patient), index_entries(patient)))
        for j in range(per_patient):
            oid = f"o{p}-{j}"
            obs = dose_observation(f"Patient/{pid}", f"20{10 + j % 15}-{1 + j % 12:02d}-{1 + j % 28:02d}T"
                                   f"{j % 24:02d}:00:00Z", rng.uniform(50, 3000))
            obs["code"]["coding"][0]["code"] = CODES[j % len(CODES)]
            obs.update(id=oid, meta={**obs["meta"], "versionId": "1", "lastUpdated": now})
            batch.append(Write("Observation", oid, 1, now, "PUT", obs, orjson.dumps(obs), index_entries(obs)))
        if len(batch) >= 20000:
            store.commit(batch)
            batch = []
    if batch:
        store.commit(batch)
    store._writer.execute("ANALYZE")
    store.close()
    os.replace(tmp, path)


def bench_history(scale: float) -> list[Result]:
    patients = max(int(2000 * scale), 20)
    per_patient = 500
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"history-{SCHEMA_TAG}-{patients}x{per_patient}.sqlite3"
    if not path.exists():
        print(f"building {patients * per_patient:,} Observations in {path} (cached for later runs)…", flush=True)
        build_history_db(path, patients, per_patient)
    store = SQLiteStore(path)
    service = FhirService(store, Settings(data_dir=CACHE))
    rng = random.Random(5)
    targets = [f"p{rng.randrange(patients)}" for _ in range(200)]
    query_of = lambda pid: [("patient", pid), ("code", f"{LOINC}|73569-6"), ("_sort", "-date"),  # noqa: E731
                            ("_count", "50")]
    it = iter(targets)

    def ours() -> None:
        query = query_of(next(it))
        searchset(service.search("Observation", query), "http://localhost/fhir", query)

    raw = sqlite3.connect(path)
    # The best hand-written plan (patient index first, probes by rid, CROSS JOIN fixes the order).
    sql = ('SELECT r.body FROM "idx_Observation" a CROSS JOIN "idx_Observation" c '
           'CROSS JOIN "idx_Observation" d CROSS JOIN "res_Observation" r '
           "WHERE a.p = 'patient' AND a.k = ? AND c.rid = a.rid AND c.p = 'code' AND c.k = '73569-6' "
           "AND c.s = ? AND d.rid = a.rid AND d.p = 'date' AND r.rid = a.rid AND r.deleted = 0 "
           "ORDER BY d.hi DESC LIMIT 50")
    it_raw = iter(targets)

    def baseline() -> None:
        raw.execute(sql, (f"Patient/{next(it_raw)}", LOINC)).fetchall()

    # Warm the page cache for every target first, then time the two alternately, so that neither side
    # pays the first-touch disk reads the other one then benefits from.
    for pid in targets:
        raw.execute(sql, (f"Patient/{pid}", LOINC)).fetchall()
    it, it_raw = iter(targets), iter(targets)
    ours_ms: list[float] = []
    raw_ms: list[float] = []
    for _ in targets:
        ours_ms += latencies_ms(ours, 1)
        raw_ms += latencies_ms(baseline, 1)
    ours_p95, raw_p95 = p95(ours_ms), p95(raw_ms)
    ids = [f"o{rng.randrange(patients)}-{rng.randrange(per_patient)}" for _ in range(2000)]
    for oid in ids:
        raw.execute('SELECT body FROM "res_Observation" WHERE id = ?', (oid,)).fetchone()
    read_it = iter(ids)
    reads = 2000 / _timed(lambda: [service.read("Observation", next(read_it)) for _ in range(2000)])
    raw_it = iter(ids)
    raw_reads = 2000 / _timed(lambda: [raw.execute('SELECT body FROM "res_Observation" WHERE id = ?',
                                                   (next(raw_it),)).fetchone() for _ in range(2000)])
    raw.close()
    store.close()
    n = patients * per_patient
    return [
        Result("FHIR core", f"patient-history search p95 at {n:,} Observations", ours_p95, "ms",
               "raw SQL of the same rows", raw_p95, higher_is_better=False, goal=20),
        Result("FHIR core", "read by id (stored JSON)", reads, "res/s", "raw SQL SELECT body", raw_reads),
    ]


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(scale: float) -> list[Result]:
    tmp = CACHE / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        results = bench_writes(tmp, max(int(30 * scale), 3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results + bench_history(scale)
