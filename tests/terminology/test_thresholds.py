"""Threshold rules: fluoroscopy SRDL, CT notification/alert values, occupational and public limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from terminology.errors import IncompatibleUnitsError, TerminologyError
from terminology.reference import load_reference
from terminology.thresholds import (
    evaluate_ct_dose_check,
    evaluate_dose_limits,
    evaluate_fluoroscopy,
    evaluate_recorded_dose_check,
)


@pytest.mark.parametrize(
    ("ka_r", "reached"), [((4.99, "Gy"), False), ((5, "Gy"), True), ((5000, "mGy"), True), ((6.2, "Gy"), True)]
)
def test_ncrp168_srdl_on_reference_air_kerma(ka_r: tuple[float, str], reached: bool) -> None:
    (check,) = evaluate_fluoroscopy(ka_r=ka_r, modality="XA")
    assert check.exceeded is reached
    assert check.threshold_ref == "ncrp168-srdl/srdl-ka-r"
    assert check.finding == "fluoro-substantial-dose" and check.level == "follow-up"
    assert check.threshold.value == 5 and check.threshold.unit == "Gy"
    assert "NCRP" in check.coefficients[0].source.citation


def test_no_shipped_active_threshold_for_dap_or_psd() -> None:
    """Only Ka,r is verified for the SRDL; DAP and PSD levels are not shipped as active rules."""
    assert evaluate_fluoroscopy(dap=(900, "Gy.cm2"), psd=(4, "Gy")) == ()


def test_comparison_set_with_mixed_dap_units() -> None:
    """OpenREM default 20 000 cGy·cm² equals 200 Gy·cm² = 0.02 Gy·m² = 2e6 mGy·cm²."""
    checks = evaluate_fluoroscopy(dap=(0.021, "Gy.m2"), ka_r=(1900, "mGy"), sets=["openrem-1.0-default-alerts"])
    by_id = {c.threshold_id: c for c in checks}
    assert set(by_id) == {"dap-total", "ka-r-total"}
    assert by_id["dap-total"].exceeded and by_id["dap-total"].ratio == pytest.approx(1.05)
    assert not by_id["ka-r-total"].exceeded
    assert by_id["dap-total"].finding == "fluoro-threshold-exceeded"


def test_cumulative_scope_carries_its_window() -> None:
    checks = evaluate_fluoroscopy(ka_r=(2.5, "Gy"), scope="cumulative", sets=["openrem-1.0-default-alerts"])
    assert [(c.threshold_id, c.window_days, c.exceeded) for c in checks] == [("ka-r-cumulative", 84, True)]


def test_modality_filter() -> None:
    assert evaluate_fluoroscopy(ka_r=(6, "Gy"), modality="CT") == ()


def test_fluoro_unit_errors() -> None:
    with pytest.raises(IncompatibleUnitsError):
        evaluate_fluoroscopy(ka_r=(6, "Gy.m2"))
    with pytest.raises(TerminologyError):
        evaluate_fluoroscopy(ka_r=(-1, "Gy"))
    with pytest.raises(TerminologyError, match="unknown threshold sets"):
        evaluate_fluoroscopy(ka_r=(1, "Gy"), sets=["nope"])


def test_no_ct_notification_values_are_shipped_active() -> None:
    assert evaluate_ct_dose_check(ctdivol=(500, "mGy"), dlp=(9000, "mGy.cm")) == ()


def test_site_notification_and_alert_values(tmp_path: Path) -> None:
    site = {
        "kind": "ct-dose-check",
        "sets": [
            {
                "id": "site-xr25",
                "title": "Hospital X dose check",
                "status": "active",
                "source": {"citation": "Hospital X CT committee 2026"},
                "thresholds": [
                    {
                        "id": "head-nv",
                        "level": "notification",
                        "quantity": "CTDIvol",
                        "value": 80,
                        "unit": "mGy",
                        "scope": "series",
                        "body_region": "head",
                    },
                    {
                        "id": "exam-av",
                        "level": "alert",
                        "quantity": "DLP",
                        "value": 3,
                        "unit": "Gy.cm",
                        "scope": "examination",
                    },
                ],
            }
        ],
    }
    (tmp_path / "xr25.json").write_text(json.dumps(site))
    (tmp_path / "policy.json").write_text(
        json.dumps({"kind": "evaluation-policy", "policy": {"ct_dose_check_sets": ["site-xr25"]}})
    )
    ref = load_reference(tmp_path)
    (nv,) = evaluate_ct_dose_check(ctdivol=(85, "mGy"), body_region="head", reference=ref)
    assert nv.exceeded and nv.finding == "ct-notification-value-exceeded"
    assert evaluate_ct_dose_check(ctdivol=(85, "mGy"), body_region="chest", reference=ref) == ()
    assert evaluate_ct_dose_check(ctdivol=(85, "mGy"), reference=ref) == ()  # region unknown: no head rule
    (av,) = evaluate_ct_dose_check(dlp=(2999, "mGy.cm"), scope="examination", reference=ref)
    assert not av.exceeded and av.finding == "ct-alert-value-exceeded"


def test_oregon_ceilings_by_population() -> None:
    checks = evaluate_ct_dose_check(
        ctdivol=(35, "mGy"), population="paediatric", body_region="head", sets=["us-or-oar-333-106-0366"]
    )
    assert [(c.threshold_id, c.exceeded) for c in checks] == [("paediatric-head-ctdivol", False)]
    checks = evaluate_ct_dose_check(
        ctdivol=(31, "mGy"), population="adult", body_region="abdomen", sets=["us-or-oar-333-106-0366"]
    )
    assert [(c.threshold_id, c.exceeded, c.finding) for c in checks] == [
        ("adult-abdomen-ctdivol", True, "ct-dose-limit-exceeded")
    ]


def test_values_recorded_by_the_scanner() -> None:
    checks = evaluate_recorded_dose_check(
        ctdivol=(55, "mGy"), ctdivol_notification=(50, "mGy"), dlp=(1100, "mGy.cm"), dlp_alert=(1, "Gy.cm")
    )
    by = {(c.quantity, c.level): c for c in checks}
    assert by[("CTDIvol", "notification")].exceeded
    assert by[("DLP", "alert")].exceeded and by[("DLP", "alert")].threshold_set == "rdsr-tid10015"
    assert "TID 10015" in by[("DLP", "alert")].coefficients[0].source.citation
    assert len(checks) == 2


# --- dose limits -------------------------------------------------------------------------------


def test_occupational_annual_and_five_year_limits() -> None:
    doses = {2020: (18, "mSv"), 2021: (25, "mSv"), 2022: (21000, "uSv"), 2023: (19, "mSv"), 2024: (0.02, "Sv")}
    checks = evaluate_dose_limits(doses)
    exceeded = {(c.threshold_id, c.period) for c in checks if c.exceeded}
    assert exceeded == {
        ("effective-annual", "2021"),
        ("effective-annual", "2022"),
        ("effective-five-year", "2020-2024"),
    }
    five = next(c for c in checks if c.threshold_id == "effective-five-year" and c.period == "2020-2024")
    assert five.value.value == pytest.approx(103) and five.threshold.value == 100
    assert all(c.finding == "dose-limit-exceeded" and c.method == "dose-limit-comparison" for c in checks)


def test_exactly_at_the_limit_is_allowed() -> None:
    (annual, *_rest) = [c for c in evaluate_dose_limits({2025: (20, "mSv")}) if c.threshold_id == "effective-annual"]
    assert not annual.exceeded


def test_lens_public_and_apprentice_limits() -> None:
    lens = evaluate_dose_limits({2025: (21, "mSv")}, quantity="equivalent-lens")
    assert {c.threshold_id for c in lens if c.exceeded} == {"lens-annual"}
    public = evaluate_dose_limits({2025: (1.2, "mSv")}, category="public")
    assert [c.exceeded for c in public] == [True]
    apprentice = evaluate_dose_limits({2025: (7, "mSv")}, category="apprentice-16-18")
    assert [c.exceeded for c in apprentice] == [True]


def test_pregnancy_limit_over_the_declared_period() -> None:
    (check,) = evaluate_dose_limits(
        {2025: (0.6, "mSv"), 2026: (0.5, "mSv")}, category="pregnant-worker", quantity="equivalent-fetus"
    )
    assert check.exceeded and check.period == "2025-2026"


def test_dose_limit_errors() -> None:
    with pytest.raises(IncompatibleUnitsError):
        evaluate_dose_limits({2025: (20, "mGy")})
    with pytest.raises(TerminologyError, match="no dose limits"):
        evaluate_dose_limits({2025: (1, "mSv")}, category="astronaut")
    assert evaluate_dose_limits({}) == ()
