"""Mapping-only throughput of CT dose reports on one core (issue 3 goal: >= 100 CT RDSRs/s).

Measured case: ``pydicom.dcmread`` of the encoded bytes + :func:`mappings.rdsr.map_dose_report` (classify,
read the content tree, normalise quirks, parse TID 10011, emit the transaction Bundle). Baseline, on the
same bytes in the same run: ``pydicom.dcmread`` + a plain walk of every content item's concept name —
the least any mapping built on pydicom has to do. Inputs: the CT RDSRs of ``shared/samples/rdsr`` when
present, otherwise generated CT reports of the same shape.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pydicom

from benchmarks import Result, throughput
from mappings.rdsr import map_dose_report

SAMPLES = Path(os.environ.get("DACS_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "samples"))


def _inputs() -> tuple[str, list[bytes]]:
    files = sorted((SAMPLES / "rdsr").glob("ct_*.dcm")) if (SAMPLES / "rdsr").is_dir() else []
    if files:
        return f"{len(files)} CT sample RDSRs", [f.read_bytes() for f in files]
    from tests.mappings import rdsr_factory as factory

    blobs = [factory.to_bytes(factory.ct_report(n=n, events=[factory.ct_event(100 * n + k) for k in range(n)]))
             for n in range(1, 9)]
    return "8 generated CT RDSRs", blobs


def _walk(items) -> int:  # type: ignore[no-untyped-def]
    count = 0
    for item in items:
        count += 1
        _ = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else None
        if "ContentSequence" in item:
            count += _walk(item.ContentSequence)
    return count


def run(scale: float) -> list[Result]:
    label, blobs = _inputs()
    seconds = max(0.5, 3.0 * scale)

    def baseline() -> int:
        for blob in blobs:
            ds = pydicom.dcmread(io.BytesIO(blob))
            _walk(ds.ContentSequence)
        return len(blobs)

    def mapping() -> int:
        for blob in blobs:
            map_dose_report(pydicom.dcmread(io.BytesIO(blob)))
        return len(blobs)

    mapping()  # warm caches (reference tables, code maps) before timing
    base = throughput(baseline, seconds)
    value = throughput(mapping, seconds)
    return [Result(capability="RDSR mapping (1 core)", case=f"dcmread + map_dose_report, {label}", value=value,
                   unit="RDSR/s", baseline_case="dcmread + plain content-tree walk", baseline_value=base,
                   goal=100.0)]
