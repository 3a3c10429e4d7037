"""UCUM units for dose data: a strict parser, conversions and one canonical unit per quantity.

Why a parser of our own: every dose value DACS stores carries a UCUM code, and the factors between
them must be exact (``Gy.m2`` → ``mGy.cm2`` is 1e7) and refuse nonsense (``mGy`` → ``mSv`` is not a
unit conversion: it needs weighting factors). Only the part of UCUM met in dose reports is supported:
prefixes, the atoms in ``_ATOMS``, ``.`` and ``/``, integer exponents, parentheses, integer factors,
``10*n`` and ``{annotations}``. The grammar follows "The Unified Code for Units of Measure"
(Schadow & McDonald, https://ucum.org/ucum, §§ 2–4); vendor spellings such as ``mGycm`` or ``Gym2``
are *not* UCUM and are rejected here: the mapping layer normalises them first and records a warning.

Absorbed dose (Gy) and equivalent/effective dose (Sv) share a dimension in SI; here they are kept
apart on purpose (as are Bq and Hz, rad and 1), so that converting between them is an error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache

from terminology.errors import IncompatibleUnitsError, UnitError

UCUM_SYSTEM = "http://unitsofmeasure.org"

Factor = Fraction | float

# Decimal prefixes (UCUM Table 1). Micro is "u" in case-sensitive UCUM.
_PREFIXES: dict[str, Fraction] = {
    "Y": Fraction(10) ** 24,
    "Z": Fraction(10) ** 21,
    "E": Fraction(10) ** 18,
    "P": Fraction(10) ** 15,
    "T": Fraction(10) ** 12,
    "G": Fraction(10) ** 9,
    "M": Fraction(10) ** 6,
    "k": Fraction(10) ** 3,
    "h": Fraction(10) ** 2,
    "da": Fraction(10),
    "d": Fraction(1, 10),
    "c": Fraction(1, 100),
    "m": Fraction(1, 10**3),
    "u": Fraction(1, 10**6),
    "n": Fraction(1, 10**9),
    "p": Fraction(1, 10**12),
    "f": Fraction(1, 10**15),
    "a": Fraction(1, 10**18),
    "z": Fraction(1, 10**21),
    "y": Fraction(1, 10**24),
}


@dataclass(frozen=True)
class _Atom:
    factor: Factor
    dims: tuple[tuple[str, int], ...]
    metric: bool  # only metric atoms take prefixes (UCUM §3.3)


def _d(**dims: int) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(dims.items()))


# Base "dimensions": SI bases plus the pseudo-bases that must not convert into each other.
_ATOMS: dict[str, _Atom] = {
    "m": _Atom(Fraction(1), _d(m=1), True),
    "g": _Atom(Fraction(1), _d(g=1), True),
    "s": _Atom(Fraction(1), _d(s=1), True),
    "A": _Atom(Fraction(1), _d(A=1), True),
    "V": _Atom(Fraction(1), _d(V=1), True),
    "Gy": _Atom(Fraction(1), _d(Gy=1), True),
    "RAD": _Atom(Fraction(1, 100), _d(Gy=1), True),  # UCUM "RAD" = 100 erg/g = 1 cGy ("rad" is the radian)
    "Sv": _Atom(Fraction(1), _d(Sv=1), True),
    "REM": _Atom(Fraction(1, 100), _d(Sv=1), True),  # UCUM "REM" = 1 cSv
    "Bq": _Atom(Fraction(1), _d(Bq=1), True),
    "Ci": _Atom(Fraction(37 * 10**9), _d(Bq=1), True),  # UCUM: 1 Ci = 3.7e10 Bq
    "Hz": _Atom(Fraction(1), _d(s=-1), True),
    "l": _Atom(Fraction(1, 1000), _d(m=3), True),
    "L": _Atom(Fraction(1, 1000), _d(m=3), True),
    "N": _Atom(Fraction(1000), _d(g=1, m=1, s=-2), True),  # compression force (111647)
    "rad": _Atom(Fraction(1), _d(rad=1), True),
    "deg": _Atom(math.pi / 180, _d(rad=1), False),
    "min": _Atom(Fraction(60), _d(s=1), False),
    "h": _Atom(Fraction(3600), _d(s=1), False),
    "d": _Atom(Fraction(86400), _d(s=1), False),
    "wk": _Atom(Fraction(604800), _d(s=1), False),
    "a": _Atom(Fraction(31557600), _d(s=1), False),  # UCUM mean Julian year, 365.25 d
    "mo": _Atom(Fraction(2629800), _d(s=1), False),  # a/12
    "%": _Atom(Fraction(1, 100), (), False),
    "[hnsf'U]": _Atom(Fraction(1), _d(hu=1), False),  # Hounsfield unit, used for mean CT numbers
}

_COMPONENT = re.compile(r"^(?P<symbol>[A-Za-z%\[\]']+?)(?P<exp>[+-]?\d+)?$")


@dataclass(frozen=True)
class UcumUnit:
    """A parsed UCUM code: its magnitude relative to the base units and its dimension vector."""

    code: str
    factor: Factor
    dims: tuple[tuple[str, int], ...]

    def is_compatible(self, other: UcumUnit) -> bool:
        """True when a value in ``self`` can be converted to ``other`` without extra physics."""
        return self.dims == other.dims


class _Parser:
    """Recursive-descent parser for the UCUM subset described in the module docstring."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.pos = 0

    def fail(self, message: str) -> UnitError:
        return UnitError(f"invalid UCUM code {self.code!r}: {message}")

    def parse(self) -> tuple[Factor, dict[str, int]]:
        if not self.code or self.code != self.code.strip() or " " in self._outside_annotations():
            raise self.fail("empty or contains spaces")
        factor, dims = self.term()
        if self.pos != len(self.code):
            raise self.fail(f"unexpected {self.code[self.pos]!r} at position {self.pos}")
        return factor, dims

    def _outside_annotations(self) -> str:
        return re.sub(r"\{[^{}]*\}", "", self.code)

    def term(self) -> tuple[Factor, dict[str, int]]:
        if self.peek() == "/":
            factor: Factor = Fraction(1)
            dims: dict[str, int] = {}
        else:
            factor, dims = self.component()
        while self.peek() in (".", "/"):
            op = self.code[self.pos]
            self.pos += 1
            f2, d2 = self.component()
            sign = 1 if op == "." else -1
            factor = factor * f2 if sign == 1 else factor / f2
            for k, v in d2.items():
                dims[k] = dims.get(k, 0) + sign * v
        return factor, {k: v for k, v in dims.items() if v}

    def peek(self) -> str:
        return self.code[self.pos] if self.pos < len(self.code) else ""

    def component(self) -> tuple[Factor, dict[str, int]]:
        ch = self.peek()
        if ch == "(":
            self.pos += 1
            factor, dims = self.term()
            if self.peek() != ")":
                raise self.fail("unbalanced parenthesis")
            self.pos += 1
            self.annotation()
            return factor, dims
        if ch == "{":
            self.annotation()
            return Fraction(1), {}
        start = self.pos
        while self.pos < len(self.code) and self.code[self.pos] not in "./(){}":
            self.pos += 1
        text = self.code[start : self.pos]
        if not text:
            raise self.fail(f"missing unit at position {start}")
        self.annotation()
        return self.simple(text)

    def annotation(self) -> None:
        if self.peek() != "{":
            return
        end = self.code.find("}", self.pos)
        if end < 0 or "{" in self.code[self.pos + 1 : end]:
            raise self.fail("unterminated annotation")
        self.pos = end + 1

    def simple(self, text: str) -> tuple[Factor, dict[str, int]]:
        if text.isdigit():
            return Fraction(int(text)), {}
        power = re.fullmatch(r"10[*^]([+-]?\d+)", text)
        if power:
            return Fraction(10) ** int(power.group(1)), {}
        match = _COMPONENT.match(text)
        if not match:
            raise self.fail(f"cannot read {text!r}")
        atom_factor, atom_dims = self.atom(match.group("symbol"))
        exp = int(match.group("exp") or 1)
        if exp == 0:
            raise self.fail(f"zero exponent in {text!r}")
        factor: Factor = atom_factor**exp
        return factor, {k: v * exp for k, v in atom_dims}

    def atom(self, symbol: str) -> tuple[Factor, tuple[tuple[str, int], ...]]:
        if symbol in _ATOMS:
            atom = _ATOMS[symbol]
            return atom.factor, atom.dims
        for prefix in sorted(_PREFIXES, key=len, reverse=True):
            rest = symbol[len(prefix) :]
            if symbol.startswith(prefix) and rest in _ATOMS:
                atom = _ATOMS[rest]
                if not atom.metric:
                    raise self.fail(f"{rest!r} is not a metric unit and takes no prefix")
                return _PREFIXES[prefix] * atom.factor, atom.dims
        raise self.fail(f"unknown unit {symbol!r}")


@lru_cache(maxsize=512)
def parse_ucum(code: str) -> UcumUnit:
    """Parse a UCUM code strictly (case-sensitive UCUM).

    Raises
    ------
    UnitError
        If the code is not valid UCUM or uses a unit outside the supported set. Vendor spellings
        (``mGycm``, ``Gym2``, ``uAs``, ``Gy.cm^2``) fail here by design.
    """
    if not isinstance(code, str):
        raise UnitError(f"UCUM code must be a string, not {type(code).__name__}")
    factor, dims = _Parser(code).parse()
    return UcumUnit(code=code, factor=factor, dims=tuple(sorted(dims.items())))


@lru_cache(maxsize=1024)
def conversion_factor(from_code: str, to_code: str) -> Factor:
    """Multiplier taking a value in ``from_code`` to ``to_code`` (exact Fraction when both are rational)."""
    src, dst = parse_ucum(from_code), parse_ucum(to_code)
    if not src.is_compatible(dst):
        raise IncompatibleUnitsError(
            f"cannot convert {from_code!r} to {to_code!r}: different quantities "
            f"({_dims_text(src.dims)} vs {_dims_text(dst.dims)})"
        )
    return src.factor / dst.factor


def convert(value: float, from_code: str, to_code: str) -> float:
    """Convert ``value`` from one UCUM unit to another.

    Rational factors are applied exactly to the value's shortest decimal form (``repr``), so that
    ``0.1 Gy`` becomes exactly ``100 mGy`` and ``0.07 dGy.cm2`` exactly ``7 mGy.cm2``: the value as the
    device wrote it, not its binary approximation, is what gets scaled.
    """
    factor = conversion_factor(from_code, to_code)
    if not math.isfinite(value):
        raise UnitError(f"value {value!r} is not a finite number")
    if factor == 1:
        return float(value)
    if isinstance(factor, Fraction):
        return float(Fraction(repr(float(value))) * factor)
    return value * factor


def _dims_text(dims: tuple[tuple[str, int], ...]) -> str:
    return ".".join(f"{k}{v if v != 1 else ''}" for k, v in dims) or "dimensionless"


class QuantityKind(StrEnum):
    """The kinds of quantity met in dose reports, each with one canonical UCUM unit."""

    DOSE = "dose"  # absorbed dose, air kerma, CTDIvol, AGD, SSDE
    DOSE_AREA_PRODUCT = "dose-area-product"
    DOSE_LENGTH_PRODUCT = "dose-length-product"
    EQUIVALENT_DOSE = "equivalent-dose"  # equivalent and effective dose
    ACTIVITY = "activity"
    TIME = "time"
    VOLTAGE = "voltage"
    CURRENT = "current"
    CURRENT_TIME_PRODUCT = "current-time-product"
    LENGTH = "length"
    AREA = "area"
    VOLUME = "volume"
    MASS = "mass"
    FORCE = "force"
    ANGLE = "angle"
    CT_NUMBER = "ct-number"
    DIMENSIONLESS = "dimensionless"


# Canonical units follow the HL7 Radiation Dose Summary IG where it states one (mGy, mGy.cm2,
# mGy.cm, s, MBq) and the DICOM template units otherwise (mm, kV, mA).
CANONICAL_UNITS: dict[QuantityKind, str] = {
    QuantityKind.DOSE: "mGy",
    QuantityKind.DOSE_AREA_PRODUCT: "mGy.cm2",
    QuantityKind.DOSE_LENGTH_PRODUCT: "mGy.cm",
    QuantityKind.EQUIVALENT_DOSE: "mSv",
    QuantityKind.ACTIVITY: "MBq",
    QuantityKind.TIME: "s",
    QuantityKind.VOLTAGE: "kV",
    QuantityKind.CURRENT: "mA",
    QuantityKind.CURRENT_TIME_PRODUCT: "mA.s",
    QuantityKind.LENGTH: "mm",
    QuantityKind.AREA: "cm2",
    QuantityKind.VOLUME: "cm3",
    QuantityKind.MASS: "kg",
    QuantityKind.FORCE: "N",
    QuantityKind.ANGLE: "deg",
    QuantityKind.CT_NUMBER: "[hnsf'U]",
    QuantityKind.DIMENSIONLESS: "1",
}


def canonical_unit(kind: QuantityKind) -> str:
    """The UCUM code DACS stores values of ``kind`` in."""
    return CANONICAL_UNITS[kind]


def kind_of(code: str) -> QuantityKind:
    """The quantity kind of a UCUM code (``"Gy.m2"`` → DOSE_AREA_PRODUCT).

    Raises ``UnitError`` for valid UCUM that is not one of the kinds DACS handles (e.g. ``m/s``).
    """
    unit = parse_ucum(code)
    for kind, canonical in CANONICAL_UNITS.items():
        if parse_ucum(canonical).dims == unit.dims:
            return kind
    raise UnitError(f"UCUM code {code!r} ({_dims_text(unit.dims)}) is not a dose-related quantity")


@dataclass(frozen=True)
class Quantity:
    """A measured value with its UCUM unit, validated on construction."""

    value: float
    unit: str

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise UnitError(f"quantity value must be a number, not {self.value!r}")
        if not math.isfinite(self.value):
            raise UnitError(f"quantity value {self.value!r} is not finite")
        parse_ucum(self.unit)

    @property
    def kind(self) -> QuantityKind:
        return kind_of(self.unit)

    def to(self, unit: str) -> Quantity:
        """The same quantity expressed in ``unit``."""
        return Quantity(convert(self.value, self.unit, unit), unit)

    def canonical(self) -> Quantity:
        """The same quantity in the canonical unit of its kind."""
        return self.to(canonical_unit(self.kind))

    def value_in(self, unit: str) -> float:
        return convert(self.value, self.unit, unit)


def to_canonical(value: float, unit: str, expected: QuantityKind | None = None) -> Quantity:
    """Convert ``value unit`` to the canonical unit of its kind, checking the kind when given.

    Raises
    ------
    IncompatibleUnitsError
        If ``expected`` is given and ``unit`` measures something else (e.g. a DLP in ``mGy``).
    """
    q = Quantity(value, unit)
    if expected is not None and q.kind is not expected:
        raise IncompatibleUnitsError(
            f"{unit!r} measures {q.kind.value}, expected {expected.value} ({canonical_unit(expected)})"
        )
    return q.canonical()


def as_quantity(value: Quantity | tuple[float, str], expected: QuantityKind | None = None) -> Quantity:
    """Accept a ``Quantity`` or a ``(value, unit)`` pair and return it in canonical units."""
    q = value if isinstance(value, Quantity) else Quantity(float(value[0]), value[1])
    return to_canonical(q.value, q.unit, expected)
