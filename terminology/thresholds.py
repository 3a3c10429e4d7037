"""Threshold rules: fluoroscopy substantial-dose levels, CT notification/alert values, dose limits.

All three reduce to "a dose quantity reached or passed a published level", with the level, the set it
belongs to and its source recorded on the result so a DetectedIssue can name the threshold. Levels
are "reached" at value ≥ threshold (an SRDL or an XR-25 value triggers at the level itself); dose
limits are "exceeded" only above the limit (a worker may receive exactly the limit).

Cumulative rules (scope ``cumulative``, e.g. OpenREM's 12-week DAP) are evaluated on totals the caller
has summed over the threshold's ``window_days``; summing is the server's job, the rule is here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from terminology.errors import TerminologyError
from terminology.reference import (
    DoseLimit,
    ReferenceData,
    Source,
    Threshold,
    ThresholdSet,
    load_reference,
    quantity_kind,
)
from terminology.results import Calculation, Coefficient, Input
from terminology.ucum import Quantity, as_quantity

# Finding codes (DACS dose-finding code system) by threshold family and level.
_FLUORO_FINDINGS = {"follow-up": "fluoro-substantial-dose"}
_CT_FINDINGS = {
    "notification": "ct-notification-value-exceeded",
    "alert": "ct-alert-value-exceeded",
    "limit": "ct-dose-limit-exceeded",
}

# Values configured on the scanner itself and recorded in the RDSR (DICOM TID 10015).
TID_10015_SOURCE = Source(
    citation="Notification/alert value configured on the scanner, recorded in the RDSR "
    "(DICOM PS3.16 TID 10015, NEMA XR-25 Dose Check)",
    evidence="P",
    origin="rdsr",
)


@dataclass(frozen=True)
class ThresholdCheck(Calculation):
    """A dose quantity against one threshold or limit."""

    finding: str  # DACS dose-finding code that applies when ``exceeded``
    threshold_set: str
    threshold_id: str
    level: str
    quantity: str
    value: Quantity
    threshold: Quantity
    ratio: float
    exceeded: bool
    scope: str
    window_days: int | None = None
    period: str | None = None  # for dose limits: the year or years the value covers
    action: str | None = None

    @property
    def threshold_ref(self) -> str:
        """Stable name of the threshold: ``<set id>/<threshold id>``."""
        return f"{self.threshold_set}/{self.threshold_id}"


def _check(
    value: Quantity,
    quantity: str,
    limit_value: float,
    limit_unit: str,
    *,
    set_id: str,
    item_id: str,
    level: str,
    finding: str,
    source: Source,
    scope: str,
    inclusive: bool,
    window_days: int | None = None,
    period: str | None = None,
    action: str | None = None,
    context: tuple[Input, ...] = (),
) -> ThresholdCheck:
    limit = Quantity(limit_value, limit_unit)
    limit_in_value_unit = limit.value_in(value.unit)
    exceeded = value.value >= limit_in_value_unit if inclusive else value.value > limit_in_value_unit
    return ThresholdCheck(
        method="dose-limit-comparison" if finding == "dose-limit-exceeded" else "threshold-comparison",
        inputs=(Input(quantity, value.value, value.unit), *context),
        coefficients=(Coefficient(f"{level} {quantity}", limit_value, limit_unit, set_id, source),),
        assumptions=(),
        finding=finding,
        threshold_set=set_id,
        threshold_id=item_id,
        level=level,
        quantity=quantity,
        value=value,
        threshold=limit,
        ratio=value.value / limit_in_value_unit,
        exceeded=exceeded,
        scope=scope,
        window_days=window_days,
        period=period,
        action=action,
    )


def _values(values: Mapping[str, Quantity | tuple[float, str] | None]) -> dict[str, Quantity]:
    out = {}
    for quantity, raw in values.items():
        if raw is None:
            continue
        q = as_quantity(raw, quantity_kind(quantity))
        if q.value < 0:
            raise TerminologyError(f"{quantity} cannot be negative")
        out[quantity] = q
    return out


def _applies(
    t: Threshold, *, scope: str, modality: str | None, population: str | None, body_region: str | None
) -> bool:
    """Whether threshold ``t`` covers the exam. A threshold restricted to a population or body region
    applies only when the caller states that population or region: a head notification value must not
    fire on an exam whose region is unknown."""
    if t.scope != scope:
        return False
    if modality is not None and t.modalities and modality not in t.modalities:
        return False
    if t.population is not None and t.population != population:
        return False
    return t.body_region is None or t.body_region == body_region


def evaluate_thresholds(
    values: Mapping[str, Quantity | tuple[float, str] | None],
    threshold_sets: Sequence[ThresholdSet],
    findings: Mapping[str, str],
    default_finding: str,
    *,
    scope: str,
    modality: str | None = None,
    population: str | None = None,
    body_region: str | None = None,
) -> tuple[ThresholdCheck, ...]:
    """Check every value against every matching threshold of ``threshold_sets`` (all results, met or not)."""
    given = _values(values)
    out = []
    for tset in threshold_sets:
        for t in tset.thresholds:
            if t.quantity not in given or not _applies(
                t, scope=scope, modality=modality, population=population, body_region=body_region
            ):
                continue
            out.append(
                _check(
                    given[t.quantity],
                    t.quantity,
                    t.value,
                    t.unit,
                    set_id=tset.id,
                    item_id=t.id,
                    level=t.level,
                    finding=findings.get(t.level, default_finding),
                    source=tset.source,
                    scope=t.scope,
                    inclusive=True,
                    window_days=t.window_days,
                    action=t.action,
                )
            )
    return tuple(out)


def _sets(table: Mapping[str, ThresholdSet], ids: Sequence[str]) -> list[ThresholdSet]:
    missing = [i for i in ids if i not in table]
    if missing:
        raise TerminologyError(f"unknown threshold sets {missing}")
    return [table[i] for i in ids]


def evaluate_fluoroscopy(
    *,
    ka_r: Quantity | tuple[float, str] | None = None,
    dap: Quantity | tuple[float, str] | None = None,
    psd: Quantity | tuple[float, str] | None = None,
    fluoro_time: Quantity | tuple[float, str] | None = None,
    modality: str | None = None,
    scope: str = "procedure",
    sets: Sequence[str] | None = None,
    reference: ReferenceData | None = None,
) -> tuple[ThresholdCheck, ...]:
    """Fluoroscopy/interventional totals against the active threshold sets (default: NCRP 168 SRDL).

    Pass procedure totals with ``scope="procedure"``, or totals summed over a window with
    ``scope="cumulative"`` (each result carries the threshold's ``window_days``). Units may be any of
    the kind (``Gy.m2``, ``cGy.cm2``, ``mGy``…).
    """
    ref = reference or load_reference()
    chosen = _sets(ref.fluoro_thresholds, sets if sets is not None else ref.policy.fluoro_threshold_sets)
    return evaluate_thresholds(
        {"Ka,r": ka_r, "DAP": dap, "PSD": psd, "fluoro-time": fluoro_time},
        chosen,
        _FLUORO_FINDINGS,
        "fluoro-threshold-exceeded",
        scope=scope,
        modality=modality,
    )


def evaluate_ct_dose_check(
    *,
    ctdivol: Quantity | tuple[float, str] | None = None,
    dlp: Quantity | tuple[float, str] | None = None,
    scope: str = "series",
    population: str | None = None,
    body_region: str | None = None,
    sets: Sequence[str] | None = None,
    reference: ReferenceData | None = None,
) -> tuple[ThresholdCheck, ...]:
    """CT values against site notification/alert values (XR-25) and ceilings in ``ct-dose-check`` sets.

    XR-25 semantics: notification values apply per series/protocol (``scope="series"``: pass the
    series CTDIvol / DLP), alert values to the examination's accumulated values
    (``scope="examination"``). DACS ships no notification or alert values (the AAPM numbers are
    unverified); the policy's ``ct_dose_check_sets`` is empty until a site configures its own.
    """
    ref = reference or load_reference()
    chosen = _sets(ref.ct_dose_check, sets if sets is not None else ref.policy.ct_dose_check_sets)
    return evaluate_thresholds(
        {"CTDIvol": ctdivol, "DLP": dlp},
        chosen,
        _CT_FINDINGS,
        "ct-notification-value-exceeded",
        scope=scope,
        modality="CT",
        population=population,
        body_region=body_region,
    )


def evaluate_recorded_dose_check(
    *,
    ctdivol: Quantity | tuple[float, str] | None = None,
    dlp: Quantity | tuple[float, str] | None = None,
    ctdivol_notification: Quantity | tuple[float, str] | None = None,
    dlp_notification: Quantity | tuple[float, str] | None = None,
    ctdivol_alert: Quantity | tuple[float, str] | None = None,
    dlp_alert: Quantity | tuple[float, str] | None = None,
) -> tuple[ThresholdCheck, ...]:
    """Check values against the notification/alert values the scanner recorded (TID 10015 113911/113912,
    113903/113904). For notification values pass the series' forward estimates (113913/113914); for alert
    values the accumulated forward estimates (113905/113906)."""
    pairs = (
        ("CTDIvol", ctdivol, ctdivol_notification, "notification", "series"),
        ("DLP", dlp, dlp_notification, "notification", "series"),
        ("CTDIvol", ctdivol, ctdivol_alert, "alert", "examination"),
        ("DLP", dlp, dlp_alert, "alert", "examination"),
    )
    out = []
    for quantity, raw_value, raw_limit, level, scope in pairs:
        if raw_value is None or raw_limit is None:
            continue
        kind = quantity_kind(quantity)
        value, limit = as_quantity(raw_value, kind), as_quantity(raw_limit, kind)
        out.append(
            _check(
                value,
                quantity,
                limit.value,
                limit.unit,
                set_id="rdsr-tid10015",
                item_id=f"{quantity}-{level}",
                level=level,
                finding=_CT_FINDINGS[level],
                source=TID_10015_SOURCE,
                scope=scope,
                inclusive=True,
            )
        )
    return tuple(out)


def _limit_windows(limit: DoseLimit, years: Sequence[int]) -> list[tuple[str, list[int]]]:
    if limit.period_years is None:
        return [(f"{years[0]}-{years[-1]}" if len(years) > 1 else str(years[0]), list(years))]
    if limit.period_years == 1:
        return [(str(y), [y]) for y in years]
    n = limit.period_years
    starts = range(years[0] - n + 1, years[-1] + 1)
    return [(f"{s}-{s + n - 1}", list(range(s, s + n))) for s in starts]


def evaluate_dose_limits(
    dose_by_year: Mapping[int, Quantity | tuple[float, str]],
    *,
    category: str = "occupational",
    quantity: str = "effective",
    sets: Sequence[str] | None = None,
    reference: ReferenceData | None = None,
) -> tuple[ThresholdCheck, ...]:
    """A person's doses per calendar year against the limits of their ``category``.

    Single-year limits are checked for each year; multi-year limits (e.g. 100 mSv in any 5
    consecutive years) for every window that contains a given year, with absent years counted as
    zero. Returns every check; ``exceeded`` is value > limit.
    """
    ref = reference or load_reference()
    kind = quantity_kind(quantity)
    if not dose_by_year:
        return ()
    doses = {int(y): as_quantity(v, kind).value_in("mSv") for y, v in dose_by_year.items()}
    if any(v < 0 for v in doses.values()):
        raise TerminologyError("doses cannot be negative")
    years = sorted(doses)
    chosen = [s for s in ref.dose_limits.values() if s.category == category and s.status == "active"]
    if sets is not None:
        chosen = [ref.dose_limits[i] for i in sets]
    if not chosen:
        raise TerminologyError(f"no dose limits for category {category!r}")
    out = []
    for lset in chosen:
        for limit in lset.limits:
            if limit.quantity != quantity:
                continue
            for label, window in _limit_windows(limit, years):
                total = Quantity(sum(doses.get(y, 0.0) for y in window), "mSv")
                out.append(
                    _check(
                        total,
                        quantity,
                        limit.value,
                        limit.unit,
                        set_id=lset.id,
                        item_id=limit.id,
                        level="limit",
                        finding="dose-limit-exceeded",
                        source=lset.source,
                        scope="period",
                        inclusive=False,
                        period=label,
                        action=limit.note,
                        context=(Input("category", category),),
                    )
                )
    return tuple(out)
