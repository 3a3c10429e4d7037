"""Effective dose: CT DLP × k, organ doses weighted by ICRP 60/103, projection DAP × coefficient.

Effective dose is a population-risk quantity for a reference person, not an individual's dose; every
result here says which coefficient, ICRP basis and age band it used so it can be labelled "estimated"
and re-computed when the reference data change.

Age handling: a patient's age selects the age band of the k-factor set (bands are in the data file).
When the age is unknown the evaluation policy decides: ``assume-adult`` (the default; recorded as an
assumption) or ``refuse`` (raises ``MissingInputError``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from terminology.errors import MissingInputError, NoCoefficientError, TerminologyError, UnknownRegionError
from terminology.reference import KFactorSet, ReferenceData, load_reference
from terminology.results import Calculation, Coefficient, Input
from terminology.ucum import Quantity, QuantityKind, as_quantity

ICRP_BASES = ("icrp60", "icrp103")


@dataclass(frozen=True)
class TissueContribution:
    """One term w_T · w_R · D_T of the effective-dose sum (doses in mGy, contribution in mSv)."""

    tissue: str
    weight: float
    absorbed_dose_mgy: float | None  # None for the remainder when no remainder tissue dose was given
    equivalent_dose_msv: float
    contribution_msv: float


@dataclass(frozen=True)
class EffectiveDose(Calculation):
    """An effective dose estimate in mSv with the record of how it was made."""

    value: float
    icrp: str
    region: str | None = None
    age_band: str | None = None
    contributions: tuple[TissueContribution, ...] = ()
    missing_tissues: tuple[str, ...] = ()
    unit: str = "mSv"

    @property
    def quantity(self) -> Quantity:
        return Quantity(self.value, self.unit)


def _check_icrp(icrp: str) -> str:
    if icrp not in ICRP_BASES:
        raise TerminologyError(f"ICRP basis must be one of {ICRP_BASES}, got {icrp!r}")
    return icrp


def _check_age(age_years: float | None) -> None:
    if age_years is not None and (not math.isfinite(age_years) or age_years < 0 or age_years > 130):
        raise TerminologyError(f"age {age_years!r} years is not a plausible patient age")


def known_k_regions(reference: ReferenceData | None = None) -> frozenset[str]:
    """Every region name any k-factor set has a coefficient or a fallback for."""
    ref = reference or load_reference()
    names: set[str] = set()
    for kset in ref.k_factors.values():
        names.update(kset.coefficients)
        names.update(kset.region_fallbacks)
    return frozenset(names)


def _k_region(region: str, ref: ReferenceData) -> tuple[str, str | None]:
    """Return (k region, note) for a k-region name or a DACS body-region id."""
    if region in known_k_regions(ref):
        return region, None
    body = ref.body_regions.get(region)
    if body is None:
        raise UnknownRegionError(
            f"unknown region {region!r}: not a k-factor region ({', '.join(sorted(known_k_regions(ref)))}) "
            "nor a DACS body region"
        )
    if body.k_region is None:
        raise NoCoefficientError(f"no CT k-factor applies to body region {region!r} ({body.display})")
    return body.k_region, f"body region {region!r} uses the {body.k_region!r} k-factor"


def _adult_band_label(kset: KFactorSet) -> str | None:
    return next((b.label for b in kset.age_bands if b.max_years is None), None)


def effective_dose_from_dlp(
    dlp: Quantity | tuple[float, str],
    region: str,
    age_years: float | None,
    *,
    icrp: str | None = None,
    k_set: str | None = None,
    reference: ReferenceData | None = None,
) -> EffectiveDose:
    """E = k(region, age) × DLP for a CT examination.

    Parameters
    ----------
    dlp
        Dose-length product in any DLP unit (``mGy.cm``, ``Gy.cm``…); converted to mGy.cm.
    region
        A k-factor region (``head``, ``chest``, ``abdomen_pelvis``, ``trunk``…) or a DACS body-region id
        (``cervical_spine`` → ``neck``). Regions a set lacks use its documented fallbacks, recorded
        in ``assumptions``.
    age_years
        Patient age at the exam; selects the age band. None follows the policy's ``missing_age``.
    icrp, k_set
        ICRP basis (default: policy) or one explicit k-factor set id; otherwise the policy's ordered
        list of sets for that basis is tried until one has a coefficient.

    Raises
    ------
    UnknownRegionError, NoCoefficientError, MissingInputError, IncompatibleUnitsError
    """
    ref = reference or load_reference()
    dose = as_quantity(dlp, QuantityKind.DOSE_LENGTH_PRODUCT)
    if dose.value < 0:
        raise TerminologyError(f"DLP cannot be negative: {dose.value} {dose.unit}")
    _check_age(age_years)
    k_region, region_note = _k_region(region, ref)
    assumptions: list[str] = [region_note] if region_note else []
    if k_set is not None:
        if k_set not in ref.k_factors:
            raise NoCoefficientError(f"unknown k-factor set {k_set!r}")
        set_ids: tuple[str, ...] = (k_set,)
        basis = ref.k_factors[k_set].icrp
    else:
        basis = _check_icrp(icrp or ref.policy.icrp)
        set_ids = ref.policy.k_factor_sets.get(basis, ())
    if age_years is None:
        if ref.policy.missing_age == "refuse":
            raise MissingInputError("patient age is unknown and the evaluation policy refuses to assume an adult")
        assumptions.append("age unknown: adult coefficient used (evaluation policy 'assume-adult')")
    tried = []
    for set_id in set_ids:
        kset = ref.k_factors[set_id]
        band_label = _adult_band_label(kset) if age_years is None else getattr(kset.band_for(age_years), "label", None)
        used_region = k_region if k_region in kset.coefficients else kset.region_fallbacks.get(k_region)
        tried.append(set_id)
        if band_label is None or used_region is None or band_label not in kset.coefficients[used_region]:
            continue
        k = kset.coefficients[used_region][band_label]
        if used_region != k_region:
            assumptions.append(f"{set_id}: no {k_region!r} coefficient, {used_region!r} used (DACS fallback)")
        if kset.conditions:
            assumptions.append(f"{set_id}: {kset.conditions}")
        return EffectiveDose(
            method="ct-dlp-k-factor",
            inputs=(
                Input("DLP", dose.value, dose.unit),
                Input("region", region),
                Input("age", age_years, "a"),
            ),
            coefficients=(
                Coefficient(f"k({used_region}, {band_label})", k, kset.unit, set_id, kset.source_for(used_region)),
            ),
            assumptions=tuple(assumptions),
            value=dose.value * k,
            icrp=kset.icrp,
            region=used_region,
            age_band=band_label,
        )
    age_text = "unknown age" if age_years is None else f"age {age_years:g} y"
    raise NoCoefficientError(
        f"no verified {basis} k-factor for region {k_region!r} at {age_text} (sets tried: {', '.join(tried) or 'none'})"
    )


def radiation_weighting_factor(
    radiation: str,
    *,
    icrp: str = "icrp103",
    neutron_energy_mev: float | None = None,
    reference: ReferenceData | None = None,
) -> float:
    """w_R for a radiation type (ICRP 103 Table 2 / Eq. 4.3, or ICRP 60 Table 1).

    For X-rays (``photon``) w_R is 1 under both, so 1 mGy of absorbed dose is 1 mSv of equivalent dose.
    """
    ref = reference or load_reference()
    wset = ref.radiation_weights.get(_check_icrp(icrp))
    if wset is None:
        raise NoCoefficientError(f"no radiation weighting factors for {icrp!r}")
    if radiation in wset.factors:
        return wset.factors[radiation]
    if radiation != "neutron":
        raise TerminologyError(f"unknown radiation type {radiation!r}; known: {sorted(wset.factors)} and 'neutron'")
    if neutron_energy_mev is None or not neutron_energy_mev > 0:
        raise MissingInputError("a neutron weighting factor needs the neutron energy in MeV")
    for piece in wset.neutron_pieces:
        if piece.below_mev is None or neutron_energy_mev < piece.below_mev:
            return piece.a + piece.b * math.exp(-(math.log(piece.c * neutron_energy_mev) ** 2) / 6)
    for step in wset.neutron_steps:
        if step.below_mev is None or neutron_energy_mev < step.below_mev:
            return step.w_r
    raise NoCoefficientError(f"no neutron weighting factor in {icrp!r}")


def effective_dose_from_organ_doses(
    organ_doses: Mapping[str, Quantity | tuple[float, str]],
    *,
    icrp: str | None = None,
    radiation: str = "photon",
    neutron_energy_mev: float | None = None,
    require_all: bool = False,
    reference: ReferenceData | None = None,
) -> EffectiveDose:
    """E = Σ_T w_T · w_R · D_T (the source paper's Eq. 1, with its Table II weights).

    ``organ_doses`` maps DACS tissue names (``lung``, ``breast``, ``red_bone_marrow``, remainder
    tissues such as ``kidneys``…) to absorbed doses in any dose unit. The remainder weight applies to
    the arithmetic mean of the remainder tissues given, or to an explicit ``remainder`` entry.
    Tissues with a weight but no dose contribute nothing and are listed in ``missing_tissues``
    (``require_all=True`` raises instead), so a partial sum is never mistaken for a complete one.
    The ICRP 60 splitting rule for the remainder is not applied (unverified; see the data README).
    """
    ref = reference or load_reference()
    basis = _check_icrp(icrp or ref.policy.icrp)
    tset = ref.tissue_weights.get(basis)
    if tset is None:
        raise NoCoefficientError(f"no tissue weighting factors for {basis!r}")
    w_r = radiation_weighting_factor(radiation, icrp=basis, neutron_energy_mev=neutron_energy_mev, reference=ref)
    doses: dict[str, float] = {}
    for tissue, dose in organ_doses.items():
        if tissue not in tset.factors and tissue not in tset.remainder_tissues:
            known = sorted(set(tset.factors) | set(tset.remainder_tissues))
            raise TerminologyError(f"{tissue!r} is not a {basis} tissue; known: {known}")
        value = as_quantity(dose, QuantityKind.DOSE).value
        if value < 0:
            raise TerminologyError(f"absorbed dose to {tissue!r} cannot be negative")
        doses[tissue] = value
    remainder_given = [t for t in tset.remainder_tissues if t in doses]
    if "remainder" in doses and remainder_given:
        raise TerminologyError("give either 'remainder' or the individual remainder tissues, not both")
    remainder_dose = doses.get("remainder")
    if remainder_dose is None and remainder_given:
        remainder_dose = sum(doses[t] for t in remainder_given) / len(remainder_given)
    contributions, missing = [], []
    for tissue, w_t in tset.factors.items():
        dose_mgy = remainder_dose if tissue == "remainder" else doses.get(tissue)
        if dose_mgy is None:
            missing.append(tissue)
            continue
        h_t = w_r * dose_mgy
        contributions.append(TissueContribution(tissue, w_t, dose_mgy, h_t, w_t * h_t))
    if require_all and missing:
        raise MissingInputError(f"organ doses missing for {', '.join(missing)}")
    assumptions = []
    if missing:
        assumptions.append(f"no dose given for {', '.join(missing)}: counted as zero")
    if remainder_given and "remainder" in tset.factors and len(remainder_given) < len(tset.remainder_tissues):
        given, total = len(remainder_given), len(tset.remainder_tissues)
        assumptions.append(f"remainder dose = mean of the {given} of {total} remainder tissues given")
    coefficients = (
        *(Coefficient(f"w_T({c.tissue})", c.weight, "1", tset.id, tset.source) for c in contributions),
        Coefficient(f"w_R({radiation})", w_r, "1", basis, ref.radiation_weights[basis].source),
    )
    return EffectiveDose(
        method="organ-dose-weighted-sum",
        inputs=tuple(Input(f"D({t})", d, "mGy") for t, d in doses.items()),
        coefficients=coefficients,
        assumptions=tuple(assumptions),
        value=sum(c.contribution_msv for c in contributions),
        icrp=basis,
        contributions=tuple(contributions),
        missing_tissues=tuple(missing),
    )


def effective_dose_from_dap(
    dap: Quantity | tuple[float, str],
    exam: str,
    age_years: float | None,
    *,
    icrp: str | None = None,
    reference: ReferenceData | None = None,
) -> EffectiveDose:
    """E = c(exam) × DAP for projection radiography, only where a verified coefficient exists.

    DACS ships **no** projection coefficients (none is verified in the reference document); a site can
    add a ``projection-effective-dose`` set with its own checked values (unit e.g. ``mSv/(Gy.cm2)``).
    Until then this raises ``NoCoefficientError`` rather than guess.
    """
    ref = reference or load_reference()
    basis = _check_icrp(icrp or ref.policy.icrp)
    dose = as_quantity(dap, QuantityKind.DOSE_AREA_PRODUCT)
    _check_age(age_years)
    adult = age_years is None or age_years >= ref.policy.adult_min_age_years
    population = "adult" if adult else "paediatric"
    for cset in ref.projection_coefficients.values():
        if cset.icrp != basis:
            continue
        for coef in cset.coefficients:
            if coef.exam == exam and coef.population in (population, "all"):
                per_unit = coef.unit.split("/", 1)[1].strip("()")
                value = dose.value_in(per_unit) * coef.value
                assumptions = ("age unknown: adult coefficient used",) if age_years is None else ()
                return EffectiveDose(
                    method="projection-dap-coefficient",
                    inputs=(
                        Input("DAP", dose.value, dose.unit),
                        Input("exam", exam),
                        Input("age", age_years, "a"),
                    ),
                    coefficients=(Coefficient(f"c({exam})", coef.value, coef.unit, cset.id, cset.source),),
                    assumptions=assumptions,
                    value=value,
                    icrp=basis,
                )
    raise NoCoefficientError(
        f"no verified {basis} DAP-to-effective-dose coefficient for {exam!r} ({population}); "
        "DACS ships none: add a site 'projection-effective-dose' set"
    )
