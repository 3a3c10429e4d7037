"""Terminology: the cost of evaluating one CT exam, against serialising its dose summary.

Evaluation runs on every ingested study, so its pure part (standardise the protocol, E = DLP × k,
SSDE, DRL comparison) must stay small next to work ingest does anyway. The baseline is serialising
the exam's dose-summary Observation with orjson, which every ingest does at least once. A second
pair measures a UCUM conversion against a plain float multiplication.
"""

from __future__ import annotations

import orjson

from benchmarks import Result, throughput
from terminology.codes import Coding
from terminology.drl import compare_with_drl
from terminology.effective_dose import effective_dose_from_dlp
from terminology.protocols import ExamDescriptor, standardise_exam
from terminology.reference import load_reference
from terminology.ssde import ssde
from terminology.ucum import convert

DESCRIPTIONS = [
    "Thorax^TAP (Adult)",
    "TDM ABDOMINO-PELVIENNE",
    "Scanner cérébral",
    "CT Chest With Contrast",
    "Angioscanner pulmonaire",
    "Rachis lombaire",
    "Protocole 7",
]

OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "73569-6"}]},
    "subject": {"reference": "Patient/p1"},
    "partOf": [{"reference": "ImagingStudy/s1"}],
    "focus": [{"reference": "ImagingStudy/s1"}],
    "effectiveDateTime": "2026-11-26T10:00:00Z",
    "valueString": "CT DLP total 612 mGy.cm",
    "component": [
        {
            "code": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "113813"}]},
            "valueQuantity": {
                "value": 612.0,
                "unit": "mGy.cm",
                "system": "http://unitsofmeasure.org",
                "code": "mGy.cm",
            },
        }
    ],
}


def _evaluate_batch(n: int) -> int:
    ref = load_reference()
    targets = (Coding.from_dicom("T-D3000", "SRT"),)
    for i in range(n):
        exam = ExamDescriptor("CT", DESCRIPTIONS[i % len(DESCRIPTIONS)], target_regions=targets)
        mapping = standardise_exam(exam, ref)
        code = mapping.code or "CT-CHEST"
        region = mapping.body_region.id if mapping.body_region and mapping.body_region.k_region else "chest"
        effective_dose_from_dlp((612.0, "mGy.cm"), region, 40 + i % 30, reference=ref)
        ssde((11.0, "mGy"), (29.0, "cm"), "113691", reference=ref)
        compare_with_drl((612.0, "mGy.cm"), code, "DLP", age_years=40, reference=ref)
    return n


def _serialise_batch(n: int) -> int:
    for _ in range(n):
        orjson.loads(orjson.dumps(OBSERVATION))
    return n


def _convert_batch(n: int) -> int:
    for i in range(n):
        convert(float(i), "Gy.m2", "mGy.cm2")
    return n


def _multiply_batch(n: int) -> int:
    total = 0.0
    for i in range(n):
        total += float(i) * 1e7
    return n


def run(scale: float) -> list[Result]:
    seconds = max(0.2, scale)
    load_reference()  # warm the cache: start-up cost is not per-exam cost
    evaluated = throughput(lambda: _evaluate_batch(20), seconds)
    serialised = throughput(lambda: _serialise_batch(200), seconds)
    converted = throughput(lambda: _convert_batch(500), seconds)
    multiplied = throughput(lambda: _multiply_batch(500), seconds)
    return [
        Result(
            "terminology",
            "evaluate one CT exam (protocol, E, SSDE, DRL)",
            evaluated,
            "exams/s",
            "orjson round trip of its dose-summary Observation",
            serialised,
        ),
        Result(
            "terminology",
            "UCUM convert Gy.m2 -> mGy.cm2",
            converted,
            "values/s",
            "plain float multiplication",
            multiplied,
        ),
    ]
