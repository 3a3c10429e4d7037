"""Fixtures for the evaluation tests: a FhirService per backend (from the server tests), a running
``dacs serve``, and helpers that store dose reports the way ingest does (map, then one transaction)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from fhir_server.bundle import BundleProcessor
from fhir_server.evaluation import DoseEvaluator, study_ids_of
from fhir_server.service import FhirService
from mappings.rdsr import map_dose_report
from tests.fhir_server.conftest import server, service  # noqa: F401  (fixtures)
from tests.mappings import rdsr_factory as factory

_numbers = itertools.count(1000)


def next_number() -> int:
    """A number no other report of the session uses (study, SOP and event UIDs derive from it)."""
    return next(_numbers)


def store_report(fhir: FhirService, ds: Dataset, edit: Callable[[list[dict[str, Any]]], None] | None = None,
                 ) -> str:
    """Map ``ds`` and apply its Bundle in one transaction (``edit`` may change the entries first);
    returns the ImagingStudy id."""
    entries = map_dose_report(ds).bundle["entry"]
    if edit is not None:
        edit(entries)
    ids = study_ids_of(BundleProcessor(fhir).transaction(entries))
    assert len(ids) == 1
    return ids[0]


def store_sample(fhir: FhirService, path: Path) -> str:
    return store_report(fhir, pydicom.dcmread(path))


def ct_exam(*, patient: str = "PID-EV", description: str | None = "TDM THORACIQUE", dlp: str = "300.0",
            ctdivol: str = "8.0", birth: str | None = "19700101", date: str = "20240301", time: str = "101500",
            events: int = 1, target: tuple[str, str, str] | None = ("T-D3000", "SRT", "Chest"),
            dose_check: bool = False, dlp_unit: tuple[str, str, str] = factory.MGYCM) -> Dataset:
    """A CT dose report with ``events`` acquisitions; the DLP total is ``dlp``."""
    n = next_number()
    per_event = f"{float(dlp) / events:.4f}"
    acquisitions = [factory.ct_event(n * 10 + k, ctdivol=ctdivol, dlp=per_event, target=target,
                                     dose_check=dose_check) for k in range(events)]
    ds = factory.ct_report(n, events=acquisitions, dlp_total=dlp, dlp_total_unit=dlp_unit, patient_id=patient,
                           accession=f"ACC-{n}", start=f"{date}{time}")
    if description is None:
        del ds.StudyDescription
    else:
        ds.StudyDescription = description
    if birth is None:
        del ds.PatientBirthDate
    else:
        ds.PatientBirthDate = birth
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = time
    return ds


def fluoro_exam(*, patient: str = "PID-FL", ka_r_gy: str = "1.0", dap_gym2: str = "0.002",
                date: str = "20240301") -> Dataset:
    """A fluoroscopy (RF) report whose accumulated Dose (RP) total is ``ka_r_gy``."""
    n = next_number()
    ds = factory.projection_report(
        n, accumulations=[factory.accumulated_projection(dap_total=dap_gym2, dose_total=ka_r_gy)],
        events=[factory.projection_event(n * 10), factory.projection_event(n * 10 + 1)],
        patient_id=patient, accession=f"ACC-{n}")
    ds.Modality = "SR"
    ds.StudyDescription = "Fluoroscopy"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    return ds


@pytest.fixture
def evaluator(service: FhirService) -> DoseEvaluator:  # noqa: F811
    return DoseEvaluator(service)


@pytest.fixture
def site_reference(service: FhirService) -> Iterator[Callable[[str, dict[str, Any]], Path]]:  # noqa: F811
    """Write a site reference-data file into ``<data dir>/reference`` (removed afterwards)."""
    folder = Path(service.settings.data_dir) / "reference"
    written: list[Path] = []

    def write(name: str, body: dict[str, Any]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(json.dumps(body), encoding="utf-8")
        written.append(path)
        return path

    yield write
    for path in written:
        path.unlink(missing_ok=True)
