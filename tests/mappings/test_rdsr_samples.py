"""Every real sample in ``shared/samples/rdsr`` through the mapping, checked against values read from the
same file by an independent pydicom walk (``rdsr_truth``)."""

from __future__ import annotations

import math
from collections import defaultdict
from functools import cache

import pydicom
import pytest

from mappings.rdsr import (
    DatasetKind,
    RdsrMappingError,
    UnsupportedTemplateError,
    classify_dataset,
    map_dose_report,
    summary_event_uids,
    supersedes,
)
from mappings.rdsr.sr_tree import read_content_tree
from tests.conftest import SAMPLES
from tests.mappings import rdsr_truth as truth
from tests.mappings.rdsr_checks import by_event_uid, check_bundle, component_value, components, summary

FILES = sorted((SAMPLES / "rdsr").glob("*.dcm")) if (SAMPLES / "rdsr").is_dir() else []
pytestmark = pytest.mark.skipif(not FILES, reason="shared RDSR samples not present")


@cache
def read(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(SAMPLES / "rdsr" / name)


@cache
def mapped(name: str):  # type: ignore[no-untyped-def]
    return map_dose_report(pydicom.dcmread(SAMPLES / "rdsr" / name))


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def expected_kind(ds: pydicom.Dataset) -> DatasetKind:
    """Independent of the classifier: root code and which containers the document holds."""
    root = ds.ConceptNameCodeSequence[0].CodeValue
    if root == "113500":
        return DatasetKind.RADIOPHARMACEUTICAL_DOSE_REPORT
    if root != "113701":
        return DatasetKind.PROPRIETARY_DOSE_SUMMARY
    if truth.top_level_count(ds, "113819") or truth.top_level_count(ds, "113811"):
        return DatasetKind.CT_DOSE_REPORT
    return DatasetKind.PROJECTION_DOSE_REPORT


def test_the_corpus_is_complete(samples_dir):
    assert len(list((samples_dir / "rdsr").glob("*.dcm"))) == 41


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_classification(path):
    ds = read(path.name)
    assert classify_dataset(ds) is expected_kind(ds)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_sample_maps_to_a_valid_bundle_with_the_files_values(path):
    ds = read(path.name)
    kind = expected_kind(ds)
    if not kind.is_mapped_dose_report:
        with pytest.raises(UnsupportedTemplateError):
            map_dose_report(pydicom.dcmread(path))
        return
    result = mapped(path.name)
    check_bundle(result.bundle)
    assert result.kind is kind
    assert result.study_instance_uid == ds.StudyInstanceUID
    assert result.sop_instance_uid == ds.SOPInstanceUID

    # one Observation per irradiation event, identified by the file's event UIDs
    file_events = truth.events(ds)
    uids = [truth.event_uid(e) for e in file_events]
    assert all(uids)
    observations = by_event_uid(result.bundle)
    assert set(observations) == set(uids) == set(result.event_uids)
    assert result.event_count == len(file_events)

    summ = summary(result.bundle)
    assert summ["partOf"] == summ["focus"]
    assert summary_event_uids(summ) == set(uids)

    if kind is DatasetKind.CT_DOSE_REPORT:
        reported = truth.num_values(ds, "113813")
        if reported:
            assert close(component_value(summ, "113813"), truth.converted(reported[0], truth.TO_MGY_CM))
        for container in file_events:
            obs = observations[truth.event_uid(container)]
            for code, table in (("113830", truth.TO_MGY), ("113838", truth.TO_MGY_CM)):
                values = [v for v in truth.num_values(container_ds(container), code) if v.value is not None]
                assert close(component_value(obs, code), truth.converted(values[0], table) if values else None)
    elif kind is DatasetKind.PROJECTION_DOSE_REPORT:
        for code, table in (("113722", truth.TO_MGY_CM2), ("113725", truth.TO_MGY)):
            values = [truth.converted(v, table) for v in truth.num_values(ds, code)]
            present = [v for v in values if v is not None]
            assert close(component_value(summ, code), sum(present) if present else None)
        for container in file_events:
            obs = observations[truth.event_uid(container)]
            for code, table in (("122130", truth.TO_MGY_CM2), ("113738", truth.TO_MGY)):
                values = [v for v in truth.num_values(container_ds(container), code) if v.value is not None]
                assert close(component_value(obs, code), truth.converted(values[0], table) if values else None)
        agds = [v for v in truth.num_values(ds, "111637") if v.value is not None]
        mapped_agds = components(summ, "111637")
        assert sorted(v.value for v in agds) == sorted(c["valueQuantity"]["value"] for c in mapped_agds)
        for comp in mapped_agds:
            assert comp["extension"][0]["valueCodeableConcept"]["coding"][0]["system"] == "http://snomed.info/sct"
    else:
        activities = [v.value for v in truth.num_values(ds, "113507")]
        assert [c["valueQuantity"]["value"] for c in components(summ, "113507")] == activities


def container_ds(container: pydicom.Dataset) -> pydicom.Dataset:
    """Wrap one content item so ``truth.num_values`` walks just its subtree."""
    wrapper = pydicom.Dataset()
    wrapper.ContentSequence = [container]
    return wrapper


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_mapping_is_deterministic(path):
    if not expected_kind(read(path.name)).is_mapped_dose_report:
        pytest.skip("not mapped")
    again = map_dose_report(pydicom.dcmread(path))
    assert again.bundle == mapped(path.name).bundle


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_encoded_and_decoded_content_trees_are_identical(path):
    """The fast reader of the encoded ContentSequence and the pydicom Dataset walk agree on every file."""
    fast = read_content_tree(pydicom.dcmread(path))
    ds = read(path.name)
    _ = list(truth.walk(ds.ContentSequence))  # forces pydicom to decode every nested sequence
    assert read_content_tree(ds) == fast


def test_unit_variants_in_the_corpus_are_converted_and_warned():
    """Every non-standard unit a sample sends for a dose quantity is converted (values checked above)
    and named in the warnings."""
    seen = set()
    for path in FILES:
        ds = read(path.name)
        if not expected_kind(ds).is_mapped_dose_report:
            continue
        warnings = " ".join(mapped(path.name).warnings)
        for code in ("113813", "113838", "113722", "122130", "113725", "113738"):
            for value in truth.num_values(ds, code):
                if value.unit in ("mGycm", "Gym2"):
                    assert f"'{value.unit}' is not UCUM" in warnings
                    seen.add(value.unit)
                elif value.unit in ("dGy.cm2",) or (value.unit == "mGy" and code in ("113725", "113738")):
                    assert f"reported in {value.unit} instead of the template's" in warnings
                    seen.add(value.unit)
    assert seen >= {"mGycm", "Gym2", "dGy.cm2", "mGy"}


def test_ucm_scheme_and_empty_values_are_warned_not_fatal():
    found_ucm = found_empty = False
    for path in FILES:
        ds = read(path.name)
        if not expected_kind(ds).is_mapped_dose_report:
            continue
        schemes = {
            item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodingSchemeDesignator
            for item, _ in truth.walk(ds.ContentSequence)
            if item.get("ValueType") == "NUM" and item.get("MeasuredValueSequence")
            and item.MeasuredValueSequence[0].get("MeasurementUnitsCodeSequence")
        }
        warnings = " ".join(mapped(path.name).warnings)
        if "UCM" in schemes:
            found_ucm = True
            assert "'UCM' read as 'UCUM'" in warnings
        empties = [item for item, _ in truth.walk(ds.ContentSequence)
                   if item.get("ValueType") == "NUM" and not item.get("MeasuredValueSequence")]
        if empties:
            found_empty = True
            assert "empty measured value" in warnings
    assert found_ucm and found_empty


def test_utf8_text_declared_as_latin1_is_repaired():
    repaired = 0
    for path in FILES:
        ds = read(path.name)
        if not expected_kind(ds).is_mapped_dose_report:
            continue
        broken = [item.TextValue for item, p in truth.walk(ds.ContentSequence)
                  if p[-1] == "125203" and "Ã" in str(item.get("TextValue") or "")]
        if not broken:
            continue
        repaired += 1
        expected = {b.encode("latin-1").decode("utf-8") for b in broken}
        protocols = {c["valueString"] for o in by_event_uid(mapped(path.name).bundle).values()
                     for c in components(o, "125203")}
        assert expected <= protocols
        assert not any("Ã" in p for p in protocols)
    assert repaired >= 1


def test_reports_of_one_study_either_supersede_or_add_up():
    """Group the corpus by Study Instance UID: nested event sets (cumulative re-sends) share the summary
    key and the larger one supersedes; disjoint sets (continued studies) get separate summaries."""
    by_study = defaultdict(list)
    for path in FILES:
        ds = read(path.name)
        if expected_kind(ds) in (DatasetKind.CT_DOSE_REPORT, DatasetKind.PROJECTION_DOSE_REPORT):
            by_study[ds.StudyInstanceUID].append(mapped(path.name))
    nested = disjoint = 0
    for results in by_study.values():
        for a in results:
            for b in results:
                if a is b:
                    continue
                if a.event_uids < b.event_uids:
                    nested += 1
                    assert a.summary_identifier == b.summary_identifier
                    assert supersedes(b, a.event_uids) and not supersedes(a, b.event_uids)
                elif not a.event_uids & b.event_uids:
                    disjoint += 1
                    assert a.summary_identifier != b.summary_identifier
    assert nested >= 3 and disjoint >= 2


def test_proprietary_summary_is_kept_not_mapped():
    kinds = [classify_dataset(read(p.name)) for p in FILES]
    assert DatasetKind.PROPRIETARY_DOSE_SUMMARY in kinds
    for path, kind in zip(FILES, kinds, strict=True):
        if kind.is_kept_unmapped:
            with pytest.raises(RdsrMappingError):
                map_dose_report(read(path.name))


def test_big_endian_and_undeclared_template_samples_are_read():
    syntaxes = {read(p.name).file_meta.TransferSyntaxUID for p in FILES}
    assert "1.2.840.10008.1.2.2" in syntaxes
    undeclared = [p for p in FILES if "ContentTemplateSequence" not in read(p.name)
                  and expected_kind(read(p.name)).is_mapped_dose_report]
    assert undeclared
    for path in undeclared:
        assert classify_dataset(read(path.name)) is expected_kind(read(path.name))
