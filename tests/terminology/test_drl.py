"""DRL comparison: which set applies by exam, quantity and age; ratio; exceedance; ICRP 135 median."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminology.drl import applicable_drls, compare_median_with_drl, compare_with_drl
from terminology.errors import IncompatibleUnitsError, MissingInputError, ReferenceDataError, TerminologyError
from terminology.reference import load_reference


def test_adult_chest_dlp_against_the_priority_sets() -> None:
    result = compare_with_drl((700, "mGy.cm"), "CT-CHEST", "DLP", age_years=40)
    sets = [c.drl_set for c in result.comparisons]
    assert sets == ["ma-el-mansouri-2022-adult-ct", "ma-bouzekraoui-adult-ct", "gb-ndrl-2022-adult-ct"]
    primary = result.primary
    assert primary is not None
    assert primary.drl.value == 632 and primary.ratio == pytest.approx(700 / 632)
    assert primary.exceeded and result.exceeded and primary.finding == "drl-exceeded"
    assert primary.coefficients[0].source.citation.startswith("El Mansouri")


def test_value_at_the_drl_is_not_exceeded() -> None:
    result = compare_with_drl((632, "mGy.cm"), "CT-CHEST", "DLP", age_years=40)
    assert result.primary is not None and not result.primary.exceeded and result.primary.finding is None


def test_units_are_converted_before_comparing() -> None:
    result = compare_with_drl((0.8, "Gy.cm"), "CT-HEAD", "DLP", age_years=60, sets=["gb-ndrl-2022-adult-ct"])
    assert result.primary is not None
    assert result.primary.value.value == pytest.approx(800) and result.primary.exceeded  # UK head 790
    with pytest.raises(IncompatibleUnitsError):
        compare_with_drl((800, "mGy"), "CT-HEAD", "DLP", age_years=60)


def test_ctdivol_uses_the_per_sequence_level() -> None:
    result = compare_with_drl((9, "mGy"), "CT-CHEST", "CTDIvol", age_years=30, sets=["gb-ndrl-2022-adult-ct"])
    assert result.primary is not None and result.primary.drl.value == 8.5 and result.primary.exceeded


def test_paediatric_patient_gets_no_adult_drl() -> None:
    result = compare_with_drl((300, "mGy.cm"), "CT-HEAD", "DLP", age_years=9)
    assert result.comparisons == () and "paediatric" in (result.reason or "")


def test_boundary_age_is_adult() -> None:
    assert compare_with_drl((1, "mGy.cm"), "CT-HEAD", "DLP", age_years=18).comparisons
    assert not compare_with_drl((1, "mGy.cm"), "CT-HEAD", "DLP", age_years=17.9).comparisons


def test_missing_age_is_assumed_adult_and_noted() -> None:
    result = compare_with_drl((300, "mGy.cm"), "CT-HEAD", "DLP", age_years=None)
    assert result.primary is not None and any("assumed adult" in a for a in result.primary.assumptions)


def test_missing_age_refused_by_policy(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"kind": "evaluation-policy", "policy": {"missing_age": "refuse"}}))
    with pytest.raises(MissingInputError):
        compare_with_drl((300, "mGy.cm"), "CT-HEAD", "DLP", age_years=None, reference=load_reference(tmp_path))


def test_exam_without_drl_and_unknown_exam() -> None:
    assert "no DRL" in (compare_with_drl((1, "mGy.cm"), "CT-PELVIS", "DLP", age_years=40).reason or "")
    assert "not a DACS standard procedure" in (
        compare_with_drl((1, "mGy.cm"), "CT-XYZ", "DLP", age_years=40).reason or ""
    )


def test_projection_esd() -> None:
    result = compare_with_drl((0.5, "mGy"), "DX-CHEST-PA", "ESD", age_years=35)
    assert [(c.drl_set, c.drl.value, c.exceeded) for c in result.comparisons] == [
        ("ma-douama-2021-adult-radiography", 0.35, True),
        ("iaea-bss115-1996-radiography", 0.4, True),
    ]


def test_exceedance_factor() -> None:
    result = compare_with_drl((700, "mGy.cm"), "CT-CHEST", "DLP", age_years=40, factor=1.5)
    assert result.primary is not None and not result.primary.exceeded and result.primary.factor == 1.5
    with pytest.raises(TerminologyError):
        compare_with_drl((700, "mGy.cm"), "CT-CHEST", "DLP", age_years=40, factor=0)


def test_unknown_quantity_and_set() -> None:
    with pytest.raises(ReferenceDataError, match="unknown dose quantity"):
        compare_with_drl((1, "mGy"), "CT-CHEST", "CTDI", age_years=40)
    with pytest.raises(TerminologyError, match="unknown DRL set"):
        applicable_drls("CT-CHEST", "DLP", age_years=40, sets=["nope"])


def test_icrp135_median() -> None:
    """Median of 5 room values (500, 600, 650, 700, 900) = 650 > 632: the facility exceeds El Mansouri."""
    values = [(500, "mGy.cm"), (0.6, "Gy.cm"), (650, "mGy.cm"), (700, "mGy.cm"), (900, "mGy.cm")]
    result = compare_median_with_drl(values, "CT-CHEST", "DLP")
    assert result.primary is not None
    assert result.primary.value.value == 650 and result.primary.statistic == "median"
    assert result.primary.sample_size == 5 and result.primary.exceeded
    with pytest.raises(MissingInputError):
        compare_median_with_drl([], "CT-CHEST", "DLP")
