"""Effective dose: DLP × k by region and age, organ doses weighted by ICRP 60/103, projection DAP."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminology.effective_dose import (
    effective_dose_from_dap,
    effective_dose_from_dlp,
    effective_dose_from_organ_doses,
    radiation_weighting_factor,
)
from terminology.errors import (
    IncompatibleUnitsError,
    MissingInputError,
    NoCoefficientError,
    TerminologyError,
    UnknownRegionError,
)
from terminology.reference import load_reference

# --- DLP × k -------------------------------------------------------------------------------------


def test_adult_chest_aapm96_worked_example() -> None:
    """AAPM 96 adult chest k = 0.014 mSv/(mGy·cm): a 400 mGy·cm chest CT gives 5.6 mSv."""
    e = effective_dose_from_dlp((400, "mGy.cm"), "chest", 45, icrp="icrp60")
    assert e.value == pytest.approx(5.6)
    assert e.unit == "mSv" and e.icrp == "icrp60" and e.age_band == "adult"
    (k,) = e.coefficients
    assert (k.value, k.set_id, k.unit) == (0.014, "aapm96-icrp60", "mSv/(mGy.cm)")
    assert "Shrimpton" in k.source.citation and k.source.evidence == "S"
    assert e.method == "ct-dlp-k-factor"
    assert {i.name: i.value for i in e.inputs} == {"DLP": 400, "region": "chest", "age": 45}


def test_default_is_icrp103_nci_set() -> None:
    e = effective_dose_from_dlp((400, "mGy.cm"), "chest", 45)
    assert e.icrp == "icrp103"
    assert e.coefficients[0].set_id == "nci-lee2012-icrp103-120kvp"
    assert e.value == pytest.approx(400 * 0.0210)
    assert any("120 kVp" in a for a in e.assumptions)


@pytest.mark.parametrize(
    ("age", "band", "k"),
    [
        (0.1, "0y", 0.011),
        (0.5, "1y", 0.0067),
        (2.9, "1y", 0.0067),
        (3, "5y", 0.0040),
        (7.4, "5y", 0.0040),
        (7.5, "10y", 0.0032),
        (14.9, "10y", 0.0032),
        (15, "adult", 0.0021),
        (80, "adult", 0.0021),
    ],
)
def test_paediatric_age_bands_head_aapm96(age: float, band: str, k: float) -> None:
    e = effective_dose_from_dlp((1000, "mGy.cm"), "head", age, icrp="icrp60", k_set="aapm96-icrp60")
    assert e.age_band == band
    assert e.value == pytest.approx(1000 * k)


def test_paediatric_k_is_larger_than_adult_for_the_same_dlp() -> None:
    child = effective_dose_from_dlp((300, "mGy.cm"), "chest", 1)
    adult = effective_dose_from_dlp((300, "mGy.cm"), "chest", 40)
    assert child.value > adult.value
    assert child.age_band == "1y"


def test_mixed_units_dlp_in_gy_cm() -> None:
    assert effective_dose_from_dlp((0.4, "Gy.cm"), "chest", 45, icrp="icrp60").value == pytest.approx(5.6)


def test_dlp_in_a_dose_unit_is_refused() -> None:
    with pytest.raises(IncompatibleUnitsError):
        effective_dose_from_dlp((400, "mGy"), "chest", 45)


def test_missing_age_assumes_adult_and_says_so() -> None:
    e = effective_dose_from_dlp((400, "mGy.cm"), "chest", None, icrp="icrp60")
    assert e.age_band == "adult" and e.value == pytest.approx(5.6)
    assert any("age unknown" in a for a in e.assumptions)


def test_missing_age_refused_under_a_refuse_policy(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"kind": "evaluation-policy", "policy": {"missing_age": "refuse"}}))
    with pytest.raises(MissingInputError):
        effective_dose_from_dlp((400, "mGy.cm"), "chest", None, reference=load_reference(tmp_path))


def test_body_region_id_is_accepted_and_noted() -> None:
    e = effective_dose_from_dlp((400, "mGy.cm"), "cervical_spine", 50, icrp="icrp60")
    assert e.region == "neck" and e.value == pytest.approx(400 * 0.0059)
    assert any("cervical_spine" in a for a in e.assumptions)


def test_region_fallback_is_recorded() -> None:
    e = effective_dose_from_dlp((600, "mGy.cm"), "chest_abdomen_pelvis", 50, icrp="icrp60")
    assert e.region == "trunk" and e.value == pytest.approx(600 * 0.015)
    assert any("DACS fallback" in a for a in e.assumptions)


def test_icrp103_neck_falls_through_to_the_adult_set() -> None:
    """NCI has no neck; the policy's second ICRP 103 set (adult only) has 0.0051."""
    e = effective_dose_from_dlp((300, "mGy.cm"), "neck", 50)
    assert e.coefficients[0].set_id == "icrp103-adult-radclass"
    assert e.value == pytest.approx(300 * 0.0051)


def test_paediatric_neck_has_no_verified_coefficient() -> None:
    with pytest.raises(NoCoefficientError, match="neck"):
        effective_dose_from_dlp((300, "mGy.cm"), "neck", 6)
    with pytest.raises(NoCoefficientError):
        effective_dose_from_dlp((300, "mGy.cm"), "neck", 6, icrp="icrp60")


def test_unknown_region() -> None:
    with pytest.raises(UnknownRegionError, match="knee-ish"):
        effective_dose_from_dlp((100, "mGy.cm"), "knee-ish", 40)


def test_region_without_k_factor() -> None:
    with pytest.raises(NoCoefficientError, match="lower_limb"):
        effective_dose_from_dlp((100, "mGy.cm"), "lower_limb", 40)


@pytest.mark.parametrize("age", [-1, float("nan"), 200])
def test_implausible_age(age: float) -> None:
    with pytest.raises(TerminologyError):
        effective_dose_from_dlp((100, "mGy.cm"), "head", age)


def test_negative_dlp() -> None:
    with pytest.raises(TerminologyError):
        effective_dose_from_dlp((-1, "mGy.cm"), "head", 40)


def test_site_k_factor_set_is_used(tmp_path: Path) -> None:
    site = {
        "kind": "ct-k-factors",
        "sets": [
            {
                "id": "site-k",
                "title": "local",
                "icrp": "icrp103",
                "unit": "mSv/(mGy.cm)",
                "source": {"citation": "local physicist"},
                "age_bands": [{"label": "all", "min_years": 0}],
                "coefficients": {"head": {"all": 0.002}},
            }
        ],
    }
    (tmp_path / "k.json").write_text(json.dumps(site))
    ref = load_reference(tmp_path)
    e = effective_dose_from_dlp((1000, "mGy.cm"), "head", 3, k_set="site-k", reference=ref)
    assert e.value == pytest.approx(2.0) and e.coefficients[0].source.origin == "site"


# --- organ doses -------------------------------------------------------------------------------


def test_single_organ_worked_example() -> None:
    """10 mGy of X-rays to the thyroid only: E = 0.04 × 1 × 10 = 0.4 mSv (ICRP 103), 0.05 × 10 (ICRP 60)."""
    e103 = effective_dose_from_organ_doses({"thyroid": (10, "mGy")}, icrp="icrp103")
    e60 = effective_dose_from_organ_doses({"thyroid": (10, "mGy")}, icrp="icrp60")
    assert e103.value == pytest.approx(0.4) and e60.value == pytest.approx(0.5)
    assert "lung" in e103.missing_tissues and any("counted as zero" in a for a in e103.assumptions)


def test_breast_weight_changed_between_icrp60_and_103() -> None:
    doses = {"breast": (20, "mGy"), "lung": (15, "mGy")}
    assert effective_dose_from_organ_doses(doses, icrp="icrp60").value == pytest.approx(0.05 * 20 + 0.12 * 15)
    assert effective_dose_from_organ_doses(doses, icrp="icrp103").value == pytest.approx(0.12 * 20 + 0.12 * 15)


def _all_tissues(icrp: str) -> list[str]:
    tset = load_reference().tissue_weights[icrp]
    return [t for t in tset.factors if t != "remainder"] + list(tset.remainder_tissues)


@given(dose=st.floats(min_value=0, max_value=1e4, allow_nan=False), icrp=st.sampled_from(["icrp60", "icrp103"]))
def test_uniform_whole_body_dose_gives_e_equal_to_d(dose: float, icrp: str) -> None:
    """Weights sum to 1, so a uniform photon dose D to every tissue gives E = D (mGy → mSv)."""
    e = effective_dose_from_organ_doses({t: (dose, "mGy") for t in _all_tissues(icrp)}, icrp=icrp, require_all=True)
    assert e.value == pytest.approx(dose, rel=1e-12, abs=1e-12)
    assert not e.missing_tissues


def test_remainder_is_the_mean_of_remainder_tissues() -> None:
    e = effective_dose_from_organ_doses({"kidneys": (10, "mGy"), "spleen": (30, "mGy")}, icrp="icrp103")
    (rem,) = [c for c in e.contributions if c.tissue == "remainder"]
    assert rem.absorbed_dose_mgy == pytest.approx(20)
    assert e.value == pytest.approx(0.12 * 20)
    assert any("mean of the 2 of 14" in a for a in e.assumptions)


def test_brain_is_remainder_in_icrp60_but_weighted_in_icrp103() -> None:
    assert effective_dose_from_organ_doses({"brain": (10, "mGy")}, icrp="icrp103").value == pytest.approx(0.1)
    assert effective_dose_from_organ_doses({"brain": (10, "mGy")}, icrp="icrp60").value == pytest.approx(0.05 * 10)


def test_mixed_units_in_organ_doses() -> None:
    e = effective_dose_from_organ_doses({"lung": (0.01, "Gy"), "stomach": (1000, "uGy")}, icrp="icrp103")
    assert e.value == pytest.approx(0.12 * 10 + 0.12 * 1)


def test_organ_dose_errors() -> None:
    with pytest.raises(TerminologyError, match="not a icrp103 tissue"):
        effective_dose_from_organ_doses({"spleen ": (1, "mGy")})
    with pytest.raises(IncompatibleUnitsError):
        effective_dose_from_organ_doses({"lung": (1, "mSv")})
    with pytest.raises(MissingInputError):
        effective_dose_from_organ_doses({"lung": (1, "mGy")}, require_all=True)
    with pytest.raises(TerminologyError, match="either 'remainder'"):
        effective_dose_from_organ_doses({"remainder": (1, "mGy"), "kidneys": (1, "mGy")})


def test_alpha_radiation_weight() -> None:
    e = effective_dose_from_organ_doses({"lung": (1, "mGy")}, radiation="alpha")
    assert e.value == pytest.approx(0.12 * 20)


@pytest.mark.parametrize(
    ("energy", "expected"),
    [
        (0.001, 2.5 + 18.2 * math.exp(-(math.log(0.001) ** 2) / 6)),
        (1.0, 5.0 + 17.0 * math.exp(-(math.log(2.0) ** 2) / 6)),
        (100.0, 2.5 + 3.25 * math.exp(-(math.log(4.0) ** 2) / 6)),
    ],
)
def test_icrp103_neutron_function(energy: float, expected: float) -> None:
    assert radiation_weighting_factor("neutron", neutron_energy_mev=energy) == pytest.approx(expected)


def test_icrp103_neutron_function_peaks_near_1_mev_at_about_20() -> None:
    assert radiation_weighting_factor("neutron", neutron_energy_mev=1.0) == pytest.approx(20.7, abs=0.05)


@pytest.mark.parametrize(("energy", "w"), [(0.005, 5), (0.05, 10), (1.0, 20), (5.0, 10), (50.0, 5)])
def test_icrp60_neutron_steps(energy: float, w: float) -> None:
    assert radiation_weighting_factor("neutron", icrp="icrp60", neutron_energy_mev=energy) == w


def test_proton_weight_differs_between_bases() -> None:
    assert radiation_weighting_factor("proton", icrp="icrp103") == 2
    assert radiation_weighting_factor("proton", icrp="icrp60") == 5
    with pytest.raises(MissingInputError):
        radiation_weighting_factor("neutron")


# --- projection radiography --------------------------------------------------------------------


def test_no_projection_coefficient_is_shipped() -> None:
    with pytest.raises(NoCoefficientError, match="ships none"):
        effective_dose_from_dap((1.2, "Gy.cm2"), "DX-CHEST-PA", 40)


def test_site_projection_coefficient(tmp_path: Path) -> None:
    site = {
        "kind": "projection-effective-dose",
        "sets": [
            {
                "id": "site-dap",
                "title": "local",
                "icrp": "icrp103",
                "source": {"citation": "local"},
                "coefficients": [{"exam": "DX-CHEST-PA", "value": 0.2, "unit": "mSv/(Gy.cm2)"}],
            }
        ],
    }
    (tmp_path / "p.json").write_text(json.dumps(site))
    ref = load_reference(tmp_path)
    e = effective_dose_from_dap((100, "cGy.cm2"), "DX-CHEST-PA", 40, reference=ref)
    assert e.value == pytest.approx(0.2 * 1.0)
    with pytest.raises(NoCoefficientError):
        effective_dose_from_dap((100, "cGy.cm2"), "DX-CHEST-PA", 5, reference=ref)
