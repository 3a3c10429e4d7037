"""SSDE (AAPM 204/220): conversion factors against the published table, phantoms, diameters."""

from __future__ import annotations

import json
import math

import pytest

from terminology.errors import IncompatibleUnitsError, NoCoefficientError, OutOfDomainError, TerminologyError
from terminology.reference import DATA_DIR
from terminology.ssde import conversion_factor, effective_diameter, ssde, water_equivalent_diameter

TABLE = json.loads((DATA_DIR / "ssde.json").read_text(encoding="utf-8"))["reference_table"]["rows"]


@pytest.mark.parametrize(("d_cm", "f32", "f16"), TABLE)
def test_factors_reproduce_the_table(d_cm: float, f32: float, f16: float) -> None:
    assert conversion_factor(d_cm, "32")[0] == pytest.approx(f32, abs=0.005)
    assert conversion_factor(d_cm, "16")[0] == pytest.approx(f16, abs=0.005)


def test_ssde_worked_example_body_phantom() -> None:
    """Dw 30 cm, CTDIvol(32 cm) 10 mGy: f = 3.704369·e^(−0.03671937·30) ≈ 1.23, SSDE ≈ 12.3 mGy."""
    s = ssde((10, "mGy"), (30, "cm"), "113691")
    assert s.factor == pytest.approx(3.704369 * math.exp(-0.03671937 * 30))
    assert s.value == pytest.approx(12.31, abs=0.01)
    assert s.phantom == "body-32cm" and s.method == "ssde-water-equivalent-diameter"
    assert s.dicom_method is not None and s.dicom_method.code == "113988"
    assert s.coefficients[0].set_id == "aapm204-32cm" and "204" in s.coefficients[0].source.citation


def test_ssde_head_phantom_effective_diameter_in_mm() -> None:
    s = ssde((10, "mGy"), (240, "mm"), "head", diameter_kind="effective")
    assert s.diameter_cm == pytest.approx(24)
    assert s.value == pytest.approx(10 * 1.874799 * math.exp(-0.03871313 * 24))
    assert s.method == "ssde-effective-diameter" and s.dicom_method is None


def test_wrong_phantom_gives_about_a_factor_of_two() -> None:
    body = ssde((10, "mGy"), (20, "cm"), "32").value
    head = ssde((10, "mGy"), (20, "cm"), "16").value
    assert 1.9 < body / head < 2.2


def test_paediatric_10cm_phantom_has_no_fit() -> None:
    with pytest.raises(NoCoefficientError, match="130541"):
        ssde((5, "mGy"), (15, "cm"), "130541")


@pytest.mark.parametrize("d", [5, 50])
def test_outside_domain_refused_by_default(d: float) -> None:
    with pytest.raises(OutOfDomainError):
        ssde((10, "mGy"), (d, "cm"), "32")
    s = ssde((10, "mGy"), (d, "cm"), "32", allow_extrapolation=True)
    assert any("extrapolated" in a for a in s.assumptions)


def test_input_kinds_are_checked() -> None:
    with pytest.raises(IncompatibleUnitsError):
        ssde((10, "mGy.cm"), (30, "cm"), "32")
    with pytest.raises(IncompatibleUnitsError):
        ssde((10, "mGy"), (30, "mGy"), "32")
    with pytest.raises(TerminologyError):
        ssde((10, "mGy"), (30, "cm"), "32", diameter_kind="lateral")
    with pytest.raises(TerminologyError):
        ssde((10, "mGy"), (0, "cm"), "32")


def test_effective_diameter_is_geometric_mean() -> None:
    assert effective_diameter((20, "cm"), (300, "mm")).value == pytest.approx(math.sqrt(20 * 30))


def test_water_equivalent_diameter_of_a_water_cylinder_is_its_diameter() -> None:
    area = math.pi * 15**2
    assert water_equivalent_diameter(0, (area, "cm2")).value == pytest.approx(30)


def test_water_equivalent_diameter_of_lower_density_is_smaller() -> None:
    """Lung-like tissue (−500 HU) in a 30 cm circle: Dw = 30·√0.5."""
    area_mm2 = math.pi * 150**2
    assert water_equivalent_diameter(-500, (area_mm2, "mm2")).value == pytest.approx(30 * math.sqrt(0.5))
    with pytest.raises(TerminologyError):
        water_equivalent_diameter(-1000, (area_mm2, "mm2"))
