"""UCUM parsing and conversion (terminology/ucum.py)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminology.errors import IncompatibleUnitsError, UnitError
from terminology.ucum import (
    CANONICAL_UNITS,
    Quantity,
    QuantityKind,
    as_quantity,
    canonical_unit,
    conversion_factor,
    convert,
    kind_of,
    parse_ucum,
    to_canonical,
)

# (from, to, exact factor): every dose unit the brief lists, checked against hand-derived factors.
FACTORS = [
    ("Gy", "mGy", 1000),
    ("uGy", "mGy", Fraction(1, 1000)),
    ("dGy", "mGy", 100),
    ("cGy", "mGy", 10),
    ("Gy.m2", "mGy.cm2", 10**7),  # 1 Gy·m² = 1000 mGy × 10 000 cm²
    ("dGy.cm2", "mGy.cm2", 100),
    ("cGy.cm2", "mGy.cm2", 10),
    ("Gy.cm2", "mGy.cm2", 1000),
    ("uGy.m2", "mGy.cm2", 10),
    ("uGy.cm2", "mGy.cm2", Fraction(1, 1000)),
    ("cGy.cm2", "Gy.m2", Fraction(1, 10**6)),
    ("Gy.cm", "mGy.cm", 1000),
    ("mGy.cm", "Gy.cm", Fraction(1, 1000)),
    ("Sv", "mSv", 1000),
    ("uSv", "mSv", Fraction(1, 1000)),
    ("min", "s", 60),
    ("ms", "s", Fraction(1, 1000)),
    ("kV", "V", 1000),
    ("mA.s", "uA.s", 1000),
    ("cm", "mm", 10),
    ("m", "mm", 1000),
    ("MBq", "Bq", 10**6),
    ("GBq", "MBq", 1000),
    ("mCi", "MBq", 37),  # 1 Ci = 3.7e10 Bq
    ("RAD", "mGy", 10),  # UCUM RAD = 1 cGy
    ("REM", "mSv", 10),
    ("h", "min", 60),
    ("a", "d", Fraction(36525, 100)),
]


@pytest.mark.parametrize(("src", "dst", "factor"), FACTORS)
def test_conversion_factors_are_exact(src: str, dst: str, factor: Fraction | int) -> None:
    assert conversion_factor(src, dst) == factor
    assert conversion_factor(dst, src) == 1 / Fraction(factor)


def test_rational_conversion_has_no_binary_rounding() -> None:
    assert convert(0.1, "Gy", "mGy") == 100.0
    assert convert(1.3, "Gy.m2", "mGy.cm2") == 13_000_000.0
    assert convert(0.07, "dGy.cm2", "mGy.cm2") == 7.0


def test_degree_uses_pi() -> None:
    assert convert(180, "deg", "rad") == pytest.approx(math.pi)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ("mGy", "mSv"),
        ("mGy", "mGy.cm"),
        ("mGy.cm", "mGy.cm2"),
        ("Gy.m2", "Gy"),
        ("Bq", "/s"),
        ("s", "m"),
        ("deg", "1"),
    ],
)
def test_incompatible_units_raise(src: str, dst: str) -> None:
    with pytest.raises(IncompatibleUnitsError, match="cannot convert"):
        convert(1.0, src, dst)


@pytest.mark.parametrize(
    "code",
    [
        "mGycm",
        "Gym2",
        "uAs",
        "mAs",
        "Gy.cm^2",
        "X-ray sources",
        "",
        " mGy",
        "mGy ",
        "kmin",
        "mdeg",
        "Gy..m",
        "Gy/",
        "(mGy",
        "mGy{note",
        "foo",
        "MGY",
        "gy",
    ],
)
def test_strict_parser_rejects_vendor_spellings_and_garbage(code: str) -> None:
    with pytest.raises(UnitError):
        parse_ucum(code)


@pytest.mark.parametrize(
    "code",
    ["{X-Ray sources}", "{pulse}/s", "{ratio}", "1", "%", "mGy.cm", "mSv/(mGy.cm)", "10*3.Bq", "[hnsf'U]"],
)
def test_valid_ucum_parses(code: str) -> None:
    assert parse_ucum(code).code == code


def test_non_string_code_is_rejected() -> None:
    with pytest.raises(UnitError):
        parse_ucum(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("Gy", QuantityKind.DOSE),
        ("uGy.m2", QuantityKind.DOSE_AREA_PRODUCT),
        ("Gy.cm", QuantityKind.DOSE_LENGTH_PRODUCT),
        ("uSv", QuantityKind.EQUIVALENT_DOSE),
        ("mCi", QuantityKind.ACTIVITY),
        ("min", QuantityKind.TIME),
        ("mA.s", QuantityKind.CURRENT_TIME_PRODUCT),
        ("{X-Ray sources}", QuantityKind.DIMENSIONLESS),
    ],
)
def test_kind_of(code: str, kind: QuantityKind) -> None:
    assert kind_of(code) is kind


def test_kind_of_unsupported_quantity() -> None:
    with pytest.raises(UnitError, match="not a dose-related quantity"):
        kind_of("m/s")


def test_every_canonical_unit_is_valid_and_of_its_kind() -> None:
    for kind, code in CANONICAL_UNITS.items():
        assert kind_of(code) is kind
        assert canonical_unit(kind) == code


def test_to_canonical_checks_expected_kind() -> None:
    assert to_canonical(2.5, "Gy.m2", QuantityKind.DOSE_AREA_PRODUCT) == Quantity(25_000_000.0, "mGy.cm2")
    with pytest.raises(IncompatibleUnitsError, match="expected dose-length-product"):
        to_canonical(10, "mGy", QuantityKind.DOSE_LENGTH_PRODUCT)


def test_quantity_validation() -> None:
    with pytest.raises(UnitError):
        Quantity(float("nan"), "mGy")
    with pytest.raises(UnitError):
        Quantity(True, "mGy")  # type: ignore[arg-type]
    with pytest.raises(UnitError):
        Quantity(1.0, "mGycm")
    assert as_quantity((3, "cGy")).unit == "mGy"
    assert Quantity(2, "Gy").to("mGy").value == 2000


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), st.sampled_from(FACTORS))
def test_round_trip(value: float, pair: tuple[str, str, object]) -> None:
    src, dst, _ = pair
    assert convert(convert(value, src, dst), dst, src) == pytest.approx(value, rel=1e-12, abs=1e-300)
