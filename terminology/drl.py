"""Comparison with diagnostic reference levels (DRLs): which DRL applies, ratio, exceeded or not.

Which set applies is the site's choice: the evaluation policy lists DRL sets in priority order (local
before national before international, by default the Moroccan sets first). A set applies to an exam
when it has an entry for the exam's standard procedure and dose quantity and its population matches
the patient (adult sets do not apply to children: ICRP 135 DRLs are for defined patient groups).

ICRP 135 compares a DRL with the *median* of a facility's patient sample, not with one patient;
``compare_median_with_drl`` does that. ``compare_with_drl`` compares one exam, which DACS uses to
flag individual outliers (a DRL is not a dose limit: an exceedance prompts review, not blame).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from terminology.errors import MissingInputError, TerminologyError
from terminology.reference import DrlEntry, DrlSet, ReferenceData, load_reference, quantity_kind
from terminology.results import Calculation, Coefficient, Input
from terminology.ucum import Quantity, as_quantity


@dataclass(frozen=True)
class DrlComparison(Calculation):
    """One exam value (or facility median) against one DRL."""

    exam: str
    quantity: str
    value: Quantity
    drl: Quantity
    drl_set: str
    drl_set_kind: str
    drl_label: str
    ratio: float
    factor: float
    exceeded: bool
    statistic: str = "value"  # "value" (one exam) or "median" (ICRP 135 facility median)
    sample_size: int = 1

    @property
    def finding(self) -> str | None:
        """DACS dose-finding code when exceeded (``drl-exceeded``), else None."""
        return "drl-exceeded" if self.exceeded else None


@dataclass(frozen=True)
class DrlEvaluation:
    """All applicable DRL comparisons in policy priority order; ``primary`` is the one to alert on."""

    exam: str
    quantity: str
    comparisons: tuple[DrlComparison, ...]
    reason: str | None = None  # why there is no comparison, when ``comparisons`` is empty

    @property
    def primary(self) -> DrlComparison | None:
        return self.comparisons[0] if self.comparisons else None

    @property
    def exceeded(self) -> bool:
        return bool(self.primary and self.primary.exceeded)


def _population_matches(dset: DrlSet, age_years: float | None, ref: ReferenceData) -> tuple[bool, str | None]:
    adult_min = ref.policy.adult_min_age_years
    if dset.population == "all":
        return True, None
    if age_years is None:
        if dset.population == "adult" and ref.policy.missing_age == "assume-adult":
            return True, "age unknown: patient assumed adult (evaluation policy 'assume-adult')"
        return False, None
    is_adult = age_years >= adult_min
    return (dset.population == "adult") == is_adult, None


def applicable_drls(
    exam: str,
    quantity: str,
    *,
    age_years: float | None,
    modality: str | None = None,
    sets: Sequence[str] | None = None,
    reference: ReferenceData | None = None,
) -> tuple[tuple[DrlSet, DrlEntry, str | None], ...]:
    """(set, entry, population note) for every DRL that applies, in priority order.

    ``sets`` overrides the policy's ``drl_set_priority`` (e.g. to benchmark against one set).
    """
    ref = reference or load_reference()
    quantity_kind(quantity)
    out = []
    for set_id in sets if sets is not None else ref.policy.drl_set_priority:
        dset = ref.drl_sets.get(set_id)
        if dset is None:
            raise TerminologyError(f"unknown DRL set {set_id!r}")
        ok, note = _population_matches(dset, age_years, ref)
        if not ok:
            continue
        for entry in dset.entries:
            if entry.exam == exam and entry.quantity == quantity and (modality is None or entry.modality == modality):
                out.append((dset, entry, note))
                break
    return tuple(out)


def _compare(
    value: Quantity,
    exam: str,
    quantity: str,
    *,
    age_years: float | None,
    modality: str | None,
    sets: Sequence[str] | None,
    factor: float | None,
    ref: ReferenceData,
    statistic: str,
    n: int,
) -> DrlEvaluation:
    if age_years is None and ref.policy.missing_age == "refuse":
        raise MissingInputError("patient age is unknown and the evaluation policy refuses to assume an adult")
    if exam not in ref.standard_procedures:
        return DrlEvaluation(exam, quantity, (), f"{exam!r} is not a DACS standard procedure")
    fac = ref.policy.drl_exceedance_factor if factor is None else factor
    if fac <= 0:
        raise TerminologyError("the DRL exceedance factor must be positive")
    comparisons = []
    for dset, entry, note in applicable_drls(
        exam, quantity, age_years=age_years, modality=modality, sets=sets, reference=ref
    ):
        drl = Quantity(entry.value, entry.unit)
        drl_value = drl.value_in(value.unit)
        ratio = value.value / drl_value
        comparisons.append(
            DrlComparison(
                method="drl-comparison",
                inputs=(
                    Input(quantity if statistic == "value" else f"median {quantity}", value.value, value.unit),
                    Input("exam", exam),
                    Input("age", age_years, "a"),
                ),
                coefficients=(
                    Coefficient(f"DRL {quantity} {entry.label}", entry.value, entry.unit, dset.id, dset.source),
                ),
                assumptions=(note,) if note else (),
                exam=exam,
                quantity=quantity,
                value=value,
                drl=drl,
                drl_set=dset.id,
                drl_set_kind=dset.kind,
                drl_label=entry.label + (f" ({entry.clinical_indication})" if entry.clinical_indication else ""),
                ratio=ratio,
                factor=fac,
                exceeded=value.value > drl_value * fac,
                statistic=statistic,
                sample_size=n,
            )
        )
    reason = None
    if not comparisons:
        adult = age_years is None or age_years >= ref.policy.adult_min_age_years
        reason = f"no DRL for {exam} {quantity} in the applicable sets" + (
            "" if adult else " (paediatric patient: adult DRLs do not apply)"
        )
    return DrlEvaluation(exam, quantity, tuple(comparisons), reason)


def compare_with_drl(
    value: Quantity | tuple[float, str],
    exam: str,
    quantity: str,
    *,
    age_years: float | None,
    modality: str | None = None,
    sets: Sequence[str] | None = None,
    factor: float | None = None,
    reference: ReferenceData | None = None,
) -> DrlEvaluation:
    """Compare one exam's ``quantity`` (``CTDIvol``, ``DLP``, ``ESD``…) with every applicable DRL.

    Exceeded means value > DRL × factor (factor from the policy, default 1.0). Units may differ from
    the DRL's (e.g. ``Gy.cm`` vs ``mGy.cm``); a value of the wrong kind raises IncompatibleUnitsError.
    """
    ref = reference or load_reference()
    q = as_quantity(value, quantity_kind(quantity))
    if q.value < 0:
        raise TerminologyError(f"{quantity} cannot be negative")
    return _compare(
        q,
        exam,
        quantity,
        age_years=age_years,
        modality=modality,
        sets=sets,
        factor=factor,
        ref=ref,
        statistic="value",
        n=1,
    )


def compare_median_with_drl(
    values: Sequence[Quantity | tuple[float, str]],
    exam: str,
    quantity: str,
    *,
    adult_sample: bool = True,
    sets: Sequence[str] | None = None,
    factor: float | None = None,
    reference: ReferenceData | None = None,
) -> DrlEvaluation:
    """ICRP 135 check: the median of a facility's (or room's) sample against the DRL."""
    ref = reference or load_reference()
    if not values:
        raise MissingInputError("no values to take the median of")
    kind = quantity_kind(quantity)
    canonical = [as_quantity(v, kind) for v in values]
    median = Quantity(statistics.median(q.value for q in canonical), canonical[0].unit)
    age = ref.policy.adult_min_age_years if adult_sample else 0.0
    return _compare(
        median,
        exam,
        quantity,
        age_years=age,
        modality=None,
        sets=sets,
        factor=factor,
        ref=ref,
        statistic="median",
        n=len(canonical),
    )
