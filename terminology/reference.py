"""Typed, cached loaders for the reference data in ``terminology/data`` and a site's overrides.

Every data file is a JSON document with a ``kind``. A site changes DRLs, thresholds, k-factor choices
or the protocol map *without code changes* by dropping files of the same kinds and schema into its
site directory (the server passes ``<data dir>/reference``). Merging rules, per kind:

* set-based kinds (weights, k-factors, DRLs, thresholds, limits, SSDE fits, typical doses): a site set
  with the same ``id`` replaces the shipped one, a new ``id`` is added, ``"remove": true`` deletes it;
* ``evaluation-policy``: site keys replace shipped keys (shallow merge of ``policy``);
* ``protocol-map``: site rules and keywords come *before* the shipped ones (site wins);
* ``body-regions`` and ``standard-procedures``: entries replaced or added by id / code.

Code-system fragments (DCM, SNOMED, LOINC, UCUM, legacy map) are not site-overridable.
Nothing is generated at run time: files are read, validated and frozen into dataclasses.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from terminology.errors import ReferenceDataError
from terminology.ucum import QuantityKind, UcumUnit, kind_of, parse_ucum

DATA_DIR = Path(__file__).resolve().parent / "data"

SET_KINDS = (
    "tissue-weighting-factors",
    "radiation-weighting-factors",
    "ct-k-factors",
    "drl-sets",
    "ct-dose-check",
    "fluoro-thresholds",
    "dose-limits",
    "ssde-coefficients",
    "typical-doses",
    "projection-effective-dose",
)
SITE_KINDS = (*SET_KINDS, "evaluation-policy", "protocol-map", "body-regions", "standard-procedures")
SHIPPED_ONLY_KINDS = ("code-system-fragment", "dacs-code-systems", "ucum-units")


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Source:
    """Where a number comes from; copied onto every calculation result that uses it."""

    citation: str
    edition: str | None = None
    table: str | None = None
    url: str | None = None
    evidence: str | None = None
    checked_via: str | None = None
    how_made: str | None = None
    origin: str = "shipped"  # "shipped" or "site"
    file: str | None = None


@dataclass(frozen=True)
class TissueWeightSet:
    id: str
    title: str
    source: Source
    factors: Mapping[str, float]
    remainder_tissues: tuple[str, ...]
    remainder_rule: str


@dataclass(frozen=True)
class NeutronPiece:
    below_mev: float | None
    a: float
    b: float
    c: float


@dataclass(frozen=True)
class NeutronStep:
    below_mev: float | None
    w_r: float


@dataclass(frozen=True)
class RadiationWeightSet:
    id: str
    title: str
    source: Source
    factors: Mapping[str, float]
    neutron_pieces: tuple[NeutronPiece, ...] = ()
    neutron_steps: tuple[NeutronStep, ...] = ()


@dataclass(frozen=True)
class AgeBand:
    label: str
    min_years: float
    max_years: float | None

    def contains(self, age_years: float) -> bool:
        return age_years >= self.min_years and (self.max_years is None or age_years < self.max_years)


@dataclass(frozen=True)
class KFactorSet:
    id: str
    title: str
    icrp: str
    unit: str
    source: Source
    conditions: str | None
    age_bands: tuple[AgeBand, ...]
    coefficients: Mapping[str, Mapping[str, float]]
    region_sources: Mapping[str, Source]
    region_fallbacks: Mapping[str, str]

    def band_for(self, age_years: float) -> AgeBand | None:
        return next((b for b in self.age_bands if b.contains(age_years)), None)

    def source_for(self, region: str) -> Source:
        return self.region_sources.get(region, self.source)


@dataclass(frozen=True)
class DrlEntry:
    exam: str
    label: str
    modality: str
    quantity: str
    value: float
    unit: str
    per: str
    clinical_indication: str | None = None


@dataclass(frozen=True)
class DrlSet:
    id: str
    title: str
    kind: str  # national, local, regional, guidance-level, typical
    country: str | None
    population: str  # adult, paediatric, all
    year: int | None
    status: str  # active, comparison, historic
    source: Source
    entries: tuple[DrlEntry, ...]


@dataclass(frozen=True)
class Threshold:
    id: str
    level: str
    quantity: str
    value: float
    unit: str
    scope: str  # series, examination, procedure, cumulative
    modalities: tuple[str, ...] = ()
    population: str | None = None
    body_region: str | None = None
    window_days: int | None = None
    action: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class ThresholdSet:
    id: str
    title: str
    status: str
    source: Source
    thresholds: tuple[Threshold, ...]


@dataclass(frozen=True)
class DoseLimit:
    id: str
    quantity: str
    value: float
    unit: str
    period_years: int | None
    note: str | None = None


@dataclass(frozen=True)
class DoseLimitSet:
    id: str
    title: str
    category: str
    status: str
    source: Source
    limits: tuple[DoseLimit, ...]


@dataclass(frozen=True)
class SsdeFit:
    id: str
    title: str
    phantom: str
    phantom_codes: tuple[str, ...]
    a: float
    b: float
    domain_cm: tuple[float, float]
    source: Source


@dataclass(frozen=True)
class TypicalDose:
    exam: str
    label: str
    value: float
    unit: str
    variant: str | None = None


@dataclass(frozen=True)
class TypicalDoseSet:
    id: str
    title: str
    status: str
    source: Source
    entries: tuple[TypicalDose, ...]


@dataclass(frozen=True)
class Background:
    id: str
    title: str
    value: float
    unit: str
    source: Source


@dataclass(frozen=True)
class ProjectionCoefficient:
    exam: str
    value: float
    unit: str
    population: str = "adult"


@dataclass(frozen=True)
class ProjectionCoefficientSet:
    id: str
    title: str
    icrp: str
    source: Source
    coefficients: tuple[ProjectionCoefficient, ...]


@dataclass(frozen=True)
class BodyRegion:
    id: str
    display: str
    parts: frozenset[str]
    within: tuple[str, ...]
    k_region: str | None
    members: frozenset[str]


@dataclass(frozen=True)
class StandardProcedure:
    code: str
    display: str
    modality: str
    body_region: str | None


@dataclass(frozen=True)
class CodeRule:
    system: str
    code: str
    standard_procedure: str


@dataclass(frozen=True)
class ProcedureKeywordRule:
    standard_procedure: str
    modalities: tuple[str, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class RegionCombination:
    modality: str
    regions: frozenset[str]
    standard_procedure: str


@dataclass(frozen=True, eq=False)  # identity hash: derived keyword tables are cached per map
class ProtocolMap:
    source: Source
    modality_aliases: Mapping[str, str]
    code_rules: tuple[CodeRule, ...]
    procedure_keywords: tuple[ProcedureKeywordRule, ...]
    region_keywords: Mapping[str, tuple[str, ...]]
    region_combinations: tuple[RegionCombination, ...]
    modality_defaults: Mapping[str, str]
    projection_keywords: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class EvaluationPolicy:
    """Site-adjustable evaluation choices. ``extra`` keeps keys this module does not interpret."""

    icrp: str
    k_factor_sets: Mapping[str, tuple[str, ...]]
    adult_min_age_years: float
    missing_age: str  # "assume-adult" or "refuse"
    drl_set_priority: tuple[str, ...]
    drl_exceedance_factor: float
    fluoro_threshold_sets: tuple[str, ...]
    ct_dose_check_sets: tuple[str, ...]
    ssde_allow_extrapolation: bool
    cumulative_effective_dose: Mapping[str, Any]
    source: Source
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Concept:
    code: str
    display: str
    properties: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class CodeSystemData:
    """A code system (or the fragment of one) DACS ships, keyed by code."""

    id: str
    system: str
    title: str
    source: Source
    concepts: Mapping[str, Concept]
    name: str | None = None
    version: str | None = None
    complete: bool = False  # False: a fragment of an external code system


@dataclass(frozen=True)
class UnitEntry:
    code: str
    display: str
    kind: str
    unit: UcumUnit


@dataclass(frozen=True, eq=False)
class ReferenceData:
    """Everything in ``terminology/data`` (plus site overrides), validated and frozen.

    Compared and hashed by identity (``load_reference`` returns the same object until a site file
    changes), so derived tables can be cached per instance.
    """

    tissue_weights: Mapping[str, TissueWeightSet]
    radiation_weights: Mapping[str, RadiationWeightSet]
    k_factors: Mapping[str, KFactorSet]
    drl_sets: Mapping[str, DrlSet]
    ct_dose_check: Mapping[str, ThresholdSet]
    fluoro_thresholds: Mapping[str, ThresholdSet]
    dose_limits: Mapping[str, DoseLimitSet]
    ssde_fits: Mapping[str, SsdeFit]
    typical_doses: Mapping[str, TypicalDoseSet]
    backgrounds: Mapping[str, Background]
    projection_coefficients: Mapping[str, ProjectionCoefficientSet]
    body_regions: Mapping[str, BodyRegion]
    standard_procedures: Mapping[str, StandardProcedure]
    protocol_map: ProtocolMap
    policy: EvaluationPolicy
    code_systems: Mapping[str, CodeSystemData]  # by system URI (DCM, SCT, LOINC) and DACS ids
    legacy_srt_to_sct: Mapping[str, str]
    units: Mapping[str, UnitEntry]
    file_versions: Mapping[str, str]
    snomed_region_index: Mapping[str, str]  # SNOMED CT code -> body region id
    site_dir: str | None = None

    def region_of_snomed(self, sct_code: str) -> BodyRegion | None:
        """The DACS body region a SNOMED CT anatomic code belongs to, if any."""
        region_id = self.snomed_region_index.get(sct_code)
        return self.body_regions[region_id] if region_id else None


# --------------------------------------------------------------------------------------------------
# reading and validating documents


@dataclass(frozen=True)
class _Doc:
    path: Path
    origin: str
    body: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind"))

    def where(self, set_id: str | None = None) -> str:
        return f"{self.path.name}" + (f" (set {set_id!r})" if set_id else "")


def _read_json(path: Path, origin: str) -> _Doc:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReferenceDataError(f"{path}: cannot read reference data: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
        raise ReferenceDataError(f"{path}: a reference-data file must be a JSON object with a 'kind'")
    return _Doc(path, origin, body)


def _need(obj: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ReferenceDataError(f"{where}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and typ in (int, float, (int, float))):
        raise ReferenceDataError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _number(obj: Mapping[str, Any], key: str, where: str, *, positive: bool = True) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReferenceDataError(f"{where}: {key!r} must be a number, got {value!r}")
    if positive and value <= 0:
        raise ReferenceDataError(f"{where}: {key!r} must be positive, got {value!r}")
    return float(value)


def _unit(code: Any, where: str, expected: QuantityKind | None = None) -> str:
    if not isinstance(code, str):
        raise ReferenceDataError(f"{where}: unit must be a UCUM string, got {code!r}")
    try:
        unit_kind = kind_of(code)
    except ValueError as exc:
        raise ReferenceDataError(f"{where}: {exc}") from exc
    if expected is not None and unit_kind is not expected:
        raise ReferenceDataError(f"{where}: unit {code!r} is not a {expected.value} unit")
    return code


def _source(raw: Any, doc: _Doc, where: str) -> Source:
    if not isinstance(raw, dict) or not isinstance(raw.get("citation"), str) or not raw["citation"]:
        raise ReferenceDataError(f"{where}: every set needs a 'source' with a 'citation'")
    optional = ("edition", "table", "url", "evidence", "checked_via", "how_made")
    extra = {k: None if raw.get(k) is None else str(raw[k]) for k in optional}
    return Source(citation=raw["citation"], **extra, origin=doc.origin, file=doc.path.name)


def _str_tuple(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ReferenceDataError(f"{where}: expected a list of strings, got {raw!r}")
    return tuple(raw)


def _parse_tissue_set(raw: Mapping[str, Any], doc: _Doc) -> TissueWeightSet:
    where = doc.where(raw.get("id"))
    factors = _need(raw, "factors", dict, where)
    for tissue in factors:
        _number(factors, tissue, where)
    total = sum(factors.values())
    if abs(total - 1.0) > 1e-9:
        raise ReferenceDataError(f"{where}: tissue weighting factors sum to {total}, not 1")
    return TissueWeightSet(
        id=_need(raw, "id", str, where),
        title=_need(raw, "title", str, where),
        source=_source(raw.get("source"), doc, where),
        factors=_frozen(factors),
        remainder_tissues=_str_tuple(raw.get("remainder_tissues"), where),
        remainder_rule=str(raw.get("remainder_rule", "")),
    )


def _parse_radiation_set(raw: Mapping[str, Any], doc: _Doc) -> RadiationWeightSet:
    where = doc.where(raw.get("id"))
    factors = _need(raw, "factors", dict, where)
    for name in factors:
        _number(factors, name, where)
    neutron = raw.get("neutron") or {}
    pieces = tuple(
        NeutronPiece(p.get("below_mev"), _number(p, "a", where), _number(p, "b", where), _number(p, "c", where))
        for p in neutron.get("pieces", [])
    )
    steps = tuple(NeutronStep(s.get("below_mev"), _number(s, "w_r", where)) for s in neutron.get("steps", []))
    return RadiationWeightSet(
        id=_need(raw, "id", str, where),
        title=_need(raw, "title", str, where),
        source=_source(raw.get("source"), doc, where),
        factors=_frozen({k: float(v) for k, v in factors.items()}),
        neutron_pieces=pieces,
        neutron_steps=steps,
    )


def _parse_k_set(raw: Mapping[str, Any], doc: _Doc) -> KFactorSet:
    where = doc.where(raw.get("id"))
    bands = []
    for b in _need(raw, "age_bands", list, where):
        max_years = b.get("max_years")
        bands.append(
            AgeBand(
                label=_need(b, "label", str, where),
                min_years=_number(b, "min_years", where, positive=False),
                max_years=None if max_years is None else _number(b, "max_years", where),
            )
        )
    labels = {b.label for b in bands}
    coefficients: dict[str, Mapping[str, float]] = {}
    for region, by_band in _need(raw, "coefficients", dict, where).items():
        if not isinstance(by_band, dict) or not by_band:
            raise ReferenceDataError(f"{where}: coefficients for {region!r} must map age bands to values")
        unknown = set(by_band) - labels
        if unknown:
            raise ReferenceDataError(f"{where}: region {region!r} uses undefined age bands {sorted(unknown)}")
        coefficients[region] = _frozen({band: _number(by_band, band, where) for band in by_band})
    fallbacks = raw.get("region_fallbacks") or {}
    for region, target in fallbacks.items():
        if target not in coefficients:
            raise ReferenceDataError(f"{where}: fallback {region!r} -> {target!r} points to no coefficients")
    region_sources = {
        region: _source(src, doc, f"{where} region {region!r}")
        for region, src in (raw.get("region_sources") or {}).items()
    }
    return KFactorSet(
        id=_need(raw, "id", str, where),
        title=_need(raw, "title", str, where),
        icrp=_need(raw, "icrp", str, where),
        unit=_need(raw, "unit", str, where),
        source=_source(raw.get("source"), doc, where),
        conditions=raw.get("conditions"),
        age_bands=tuple(bands),
        coefficients=_frozen(coefficients),
        region_sources=_frozen(region_sources),
        region_fallbacks=_frozen(fallbacks),
    )


_QUANTITY_KINDS = {
    "CTDIvol": QuantityKind.DOSE,
    "SSDE": QuantityKind.DOSE,
    "DLP": QuantityKind.DOSE_LENGTH_PRODUCT,
    "DLP-event": QuantityKind.DOSE_LENGTH_PRODUCT,
    "DAP": QuantityKind.DOSE_AREA_PRODUCT,
    "Ka,r": QuantityKind.DOSE,
    "PSD": QuantityKind.DOSE,
    "ESD": QuantityKind.DOSE,
    "AGD": QuantityKind.DOSE,
    "fluoro-time": QuantityKind.TIME,
    "effective": QuantityKind.EQUIVALENT_DOSE,
    "equivalent-lens": QuantityKind.EQUIVALENT_DOSE,
    "equivalent-skin": QuantityKind.EQUIVALENT_DOSE,
    "equivalent-extremities": QuantityKind.EQUIVALENT_DOSE,
    "equivalent-fetus": QuantityKind.EQUIVALENT_DOSE,
}


def quantity_kind(quantity: str) -> QuantityKind:
    """The unit kind of a DACS dose quantity code (``"DLP"`` → dose-length product)."""
    try:
        return _QUANTITY_KINDS[quantity]
    except KeyError:
        raise ReferenceDataError(f"unknown dose quantity {quantity!r}; known: {sorted(_QUANTITY_KINDS)}") from None


def _checked_quantity(raw: Mapping[str, Any], where: str) -> tuple[str, float, str]:
    quantity = _need(raw, "quantity", str, where)
    try:
        kind = quantity_kind(quantity)
    except ReferenceDataError as exc:
        raise ReferenceDataError(f"{where}: {exc}") from None
    return quantity, _number(raw, "value", where), _unit(raw.get("unit"), where, kind)


def _parse_drl_set(raw: Mapping[str, Any], doc: _Doc) -> DrlSet:
    where = doc.where(raw.get("id"))
    entries = []
    for e in _need(raw, "entries", list, where):
        quantity, value, unit = _checked_quantity(e, where)
        entries.append(
            DrlEntry(
                exam=_need(e, "exam", str, where),
                label=str(e.get("label", e["exam"])),
                modality=_need(e, "modality", str, where),
                quantity=quantity,
                value=value,
                unit=unit,
                per=str(e.get("per", "examination")),
                clinical_indication=e.get("clinical_indication"),
            )
        )
    return DrlSet(
        id=_need(raw, "id", str, where),
        title=_need(raw, "title", str, where),
        kind=str(raw.get("kind", "local")),
        country=raw.get("country"),
        population=str(raw.get("population", "adult")),
        year=raw.get("year"),
        status=str(raw.get("status", "active")),
        source=_source(raw.get("source"), doc, where),
        entries=tuple(entries),
    )


def _parse_threshold_set(raw: Mapping[str, Any], doc: _Doc) -> ThresholdSet:
    where = doc.where(raw.get("id"))
    thresholds = []
    for t in _need(raw, "thresholds", list, where):
        quantity, value, unit = _checked_quantity(t, where)
        window = t.get("window_days")
        thresholds.append(
            Threshold(
                id=_need(t, "id", str, where),
                level=str(t.get("level", "alert")),
                quantity=quantity,
                value=value,
                unit=unit,
                scope=str(t.get("scope", "procedure")),
                modalities=_str_tuple(t.get("modality"), where),
                population=t.get("population"),
                body_region=t.get("body_region"),
                window_days=None if window is None else int(_number(t, "window_days", where)),
                action=t.get("action"),
                note=t.get("note"),
            )
        )
    return ThresholdSet(
        id=_need(raw, "id", str, where),
        title=_need(raw, "title", str, where),
        status=str(raw.get("status", "active")),
        source=_source(raw.get("source"), doc, where),
        thresholds=tuple(thresholds),
    )


def _parse_limit_set(raw: Mapping[str, Any], doc: _Doc) -> DoseLimitSet:
    where = doc.where(raw.get("id"))
    limits = []
    for lim in _need(raw, "limits", list, where):
        quantity, value, unit = _checked_quantity(lim, where)
        period = lim.get("period_years")
        limits.append(
            DoseLimit(
                id=_need(lim, "id", str, where),
                quantity=quantity,
                value=value,
                unit=unit,
                period_years=None if period is None else int(_number(lim, "period_years", where)),
                note=lim.get("note"),
            )
        )
    return DoseLimitSet(
        id=_need(raw, "id", str, where),
        title=_need(raw, "title", str, where),
        category=_need(raw, "category", str, where),
        status=str(raw.get("status", "active")),
        source=_source(raw.get("source"), doc, where),
        limits=tuple(limits),
    )


def _parse_ssde_fit(raw: Mapping[str, Any], doc: _Doc) -> SsdeFit:
    where = doc.where(raw.get("id"))
    domain = _need(raw, "domain_cm", list, where)
    if len(domain) != 2 or not all(isinstance(x, int | float) for x in domain) or domain[0] >= domain[1]:
        raise ReferenceDataError(f"{where}: 'domain_cm' must be [low, high]")
    if raw.get("diameter_unit", "cm") != "cm":
        raise ReferenceDataError(f"{where}: SSDE fits must take the diameter in cm")
    return SsdeFit(
        id=_need(raw, "id", str, where),
        title=_need(raw, "title", str, where),
        phantom=_need(raw, "phantom", str, where),
        phantom_codes=_str_tuple(raw.get("phantom_codes"), where),
        a=_number(raw, "a", where),
        b=_number(raw, "b", where),
        domain_cm=(float(domain[0]), float(domain[1])),
        source=_source(raw.get("source"), doc, where),
    )


def _parse_typical_set(raw: Mapping[str, Any], doc: _Doc) -> TypicalDoseSet:
    where = doc.where(raw.get("id"))
    entries = tuple(
        TypicalDose(
            exam=_need(e, "exam", str, where),
            label=_need(e, "label", str, where),
            value=_number(e, "value", where),
            unit=_unit(e.get("unit"), where, QuantityKind.EQUIVALENT_DOSE),
            variant=e.get("variant"),
        )
        for e in _need(raw, "entries", list, where)
    )
    return TypicalDoseSet(
        id=_need(raw, "id", str, where),
        title=_need(raw, "title", str, where),
        status=str(raw.get("status", "active")),
        source=_source(raw.get("source"), doc, where),
        entries=entries,
    )


def _parse_projection_set(raw: Mapping[str, Any], doc: _Doc) -> ProjectionCoefficientSet:
    where = doc.where(raw.get("id"))
    coefficients = []
    for c in _need(raw, "coefficients", list, where):
        unit = _need(c, "unit", str, where)
        try:
            parse_ucum(unit)  # e.g. "mSv/(Gy.cm2)"
        except ValueError as exc:
            raise ReferenceDataError(f"{where}: {exc}") from exc
        coefficients.append(
            ProjectionCoefficient(
                exam=_need(c, "exam", str, where),
                value=_number(c, "value", where),
                unit=unit,
                population=str(c.get("population", "adult")),
            )
        )
    return ProjectionCoefficientSet(
        id=_need(raw, "id", str, where),
        title=_need(raw, "title", str, where),
        icrp=_need(raw, "icrp", str, where),
        source=_source(raw.get("source"), doc, where),
        coefficients=tuple(coefficients),
    )


_SET_PARSERS = {
    "tissue-weighting-factors": _parse_tissue_set,
    "radiation-weighting-factors": _parse_radiation_set,
    "ct-k-factors": _parse_k_set,
    "drl-sets": _parse_drl_set,
    "ct-dose-check": _parse_threshold_set,
    "fluoro-thresholds": _parse_threshold_set,
    "dose-limits": _parse_limit_set,
    "ssde-coefficients": _parse_ssde_fit,
    "typical-doses": _parse_typical_set,
    "projection-effective-dose": _parse_projection_set,
}


def _merge_sets(kind: str, docs: Iterable[_Doc]) -> dict[str, Any]:
    """Parse the sets of ``kind`` from shipped then site documents; later ids replace earlier ones."""
    out: dict[str, Any] = {}
    for doc in docs:
        sets = doc.body.get("sets")
        if not isinstance(sets, list):
            raise ReferenceDataError(f"{doc.where()}: a {kind!r} file needs a list 'sets'")
        for raw in sets:
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                raise ReferenceDataError(f"{doc.where()}: every set needs a string 'id'")
            if raw.get("remove") is True:
                out.pop(raw["id"], None)
                continue
            out[raw["id"]] = _SET_PARSERS[kind](raw, doc)
    return out


def _parse_backgrounds(docs: Iterable[_Doc]) -> dict[str, Background]:
    out = {}
    for doc in docs:
        for raw in doc.body.get("background", []):
            where = doc.where(raw.get("id"))
            unit = _need(raw, "unit", str, where)
            parse_ucum(unit)
            out[raw["id"]] = Background(
                id=_need(raw, "id", str, where),
                title=_need(raw, "title", str, where),
                value=_number(raw, "value", where),
                unit=unit,
                source=_source(raw.get("source"), doc, where),
            )
    return out


def _parse_body_regions(docs: Iterable[_Doc]) -> dict[str, BodyRegion]:
    regions: dict[str, BodyRegion] = {}
    for doc in docs:
        for raw in _need(doc.body, "regions", list, doc.where()):
            where = doc.where(raw.get("id"))
            rid = _need(raw, "id", str, where)
            regions[rid] = BodyRegion(
                id=rid,
                display=_need(raw, "display", str, where),
                parts=frozenset(_str_tuple(raw.get("parts") or [rid], where)),
                within=_str_tuple(raw.get("within"), where),
                k_region=raw.get("k_region"),
                members=frozenset(_str_tuple(raw.get("members"), where)),
            )
    owners: dict[str, str] = {}
    for region in regions.values():
        for code in region.members:
            if code in owners:
                raise ReferenceDataError(f"SNOMED code {code} is in both {owners[code]!r} and {region.id!r}")
            owners[code] = region.id
    return regions


def _parse_procedures(docs: Iterable[_Doc], regions: Mapping[str, BodyRegion]) -> dict[str, StandardProcedure]:
    out: dict[str, StandardProcedure] = {}
    for doc in docs:
        for raw in _need(doc.body, "concepts", list, doc.where()):
            where = doc.where(raw.get("code"))
            region = raw.get("body_region")
            if region is not None and region not in regions:
                raise ReferenceDataError(f"{where}: unknown body region {region!r}")
            out[raw["code"]] = StandardProcedure(
                code=_need(raw, "code", str, where),
                display=_need(raw, "display", str, where),
                modality=_need(raw, "modality", str, where),
                body_region=region,
            )
    return out


def _parse_protocol_map(
    docs: list[_Doc], regions: Mapping[str, BodyRegion], procedures: Mapping[str, StandardProcedure]
) -> ProtocolMap:
    """Merge protocol maps; site documents (later in ``docs``) take precedence."""
    code_rules: list[CodeRule] = []
    keyword_rules: list[ProcedureKeywordRule] = []
    region_keywords: dict[str, list[str]] = {}
    combinations: list[RegionCombination] = []
    aliases: dict[str, str] = {}
    defaults: dict[str, str] = {}
    projections: dict[str, list[str]] = {}

    def check_proc(code: str, where: str) -> str:
        if code not in procedures:
            raise ReferenceDataError(f"{where}: unknown standard procedure {code!r}")
        return code

    for doc in reversed(docs):  # site first
        body, where = doc.body, doc.where()
        for r in body.get("code_rules", []):
            code_rules.append(
                CodeRule(
                    _need(r, "system", str, where),
                    _need(r, "code", str, where),
                    check_proc(_need(r, "standard_procedure", str, where), where),
                )
            )
        for r in body.get("procedure_keywords", []):
            keyword_rules.append(
                ProcedureKeywordRule(
                    check_proc(_need(r, "standard_procedure", str, where), where),
                    _str_tuple(r.get("modality"), where),
                    _str_tuple(r.get("keywords"), where),
                )
            )
        for region, words in body.get("region_keywords", {}).items():
            if region not in regions:
                raise ReferenceDataError(f"{where}: region keywords for unknown region {region!r}")
            region_keywords.setdefault(region, []).extend(_str_tuple(words, where))
        for r in body.get("region_combinations", []):
            regs = frozenset(_str_tuple(r.get("regions"), where))
            if not regs <= set(regions):
                raise ReferenceDataError(f"{where}: combination uses unknown regions {sorted(regs - set(regions))}")
            combinations.append(
                RegionCombination(
                    _need(r, "modality", str, where),
                    regs,
                    check_proc(_need(r, "standard_procedure", str, where), where),
                )
            )
        for k, v in body.get("modality_aliases", {}).items():
            aliases.setdefault(k, v)
        for k, v in body.get("modality_defaults", {}).items():
            defaults.setdefault(k, check_proc(v, where))
        for k, words in body.get("projection_keywords", {}).items():
            projections.setdefault(k, []).extend(_str_tuple(words, where))
    shipped = docs[0]
    return ProtocolMap(
        source=_source(shipped.body.get("source"), shipped, shipped.where()),
        modality_aliases=_frozen(aliases),
        code_rules=tuple(code_rules),
        procedure_keywords=tuple(keyword_rules),
        region_keywords=_frozen({k: tuple(v) for k, v in region_keywords.items()}),
        region_combinations=tuple(combinations),
        modality_defaults=_frozen(defaults),
        projection_keywords=_frozen({k: tuple(v) for k, v in projections.items()}),
    )


_POLICY_KEYS = {
    "icrp",
    "k_factor_sets",
    "adult_min_age_years",
    "missing_age",
    "drl_set_priority",
    "drl_exceedance_factor",
    "fluoro_threshold_sets",
    "ct_dose_check_sets",
    "ssde_allow_extrapolation",
    "cumulative_effective_dose",
}


def _parse_policy(docs: list[_Doc]) -> EvaluationPolicy:
    merged: dict[str, Any] = {}
    for doc in docs:
        policy = _need(doc.body, "policy", dict, doc.where())
        merged.update(policy)
    where = "evaluation-policy"
    if merged.get("icrp") not in ("icrp60", "icrp103"):
        raise ReferenceDataError(f"{where}: 'icrp' must be 'icrp60' or 'icrp103'")
    if merged.get("missing_age") not in ("assume-adult", "refuse"):
        raise ReferenceDataError(f"{where}: 'missing_age' must be 'assume-adult' or 'refuse'")
    k_sets = _need(merged, "k_factor_sets", dict, where)
    last = docs[-1]
    return EvaluationPolicy(
        icrp=merged["icrp"],
        k_factor_sets=_frozen({k: _str_tuple(v, where) for k, v in k_sets.items()}),
        adult_min_age_years=_number(merged, "adult_min_age_years", where),
        missing_age=merged["missing_age"],
        drl_set_priority=_str_tuple(merged.get("drl_set_priority"), where),
        drl_exceedance_factor=_number(merged, "drl_exceedance_factor", where),
        fluoro_threshold_sets=_str_tuple(merged.get("fluoro_threshold_sets"), where),
        ct_dose_check_sets=_str_tuple(merged.get("ct_dose_check_sets"), where),
        ssde_allow_extrapolation=bool(merged.get("ssde_allow_extrapolation", False)),
        cumulative_effective_dose=_frozen(merged.get("cumulative_effective_dose") or {}),
        source=_source(last.body.get("source") or docs[0].body.get("source"), last, where),
        extra=_frozen({k: v for k, v in merged.items() if k not in _POLICY_KEYS}),
    )


def _parse_code_fragment(doc: _Doc) -> CodeSystemData:
    where = doc.where(doc.body.get("id"))
    concepts = {}
    for c in _need(doc.body, "concepts", list, where):
        code = _need(c, "code", str, where)
        props = {k: v for k, v in c.items() if k not in ("code", "display")}
        concepts[code] = Concept(code, _need(c, "display", str, where), _frozen(props))
    return CodeSystemData(
        id=_need(doc.body, "id", str, where),
        system=_need(doc.body, "system", str, where),
        title=_need(doc.body, "title", str, where),
        source=_source(doc.body.get("source"), doc, where),
        concepts=_frozen(concepts),
        version=doc.body.get("version"),
    )


def _parse_dacs_systems(doc: _Doc) -> list[CodeSystemData]:
    out = []
    for cs in _need(doc.body, "code_systems", list, doc.where()):
        where = doc.where(cs.get("id"))
        concepts = {
            c["code"]: Concept(
                c["code"], c["display"], _frozen({k: v for k, v in c.items() if k not in ("code", "display")})
            )
            for c in _need(cs, "concepts", list, where)
        }
        out.append(
            CodeSystemData(
                id=_need(cs, "id", str, where),
                system=_need(cs, "id", str, where),  # replaced by a canonical URL in terminology.fhir
                title=_need(cs, "title", str, where),
                name=cs.get("name"),
                source=_source(doc.body.get("source"), doc, where),
                concepts=_frozen(concepts),
                version=doc.body.get("version"),
                complete=True,
            )
        )
    return out


def _parse_units(doc: _Doc) -> dict[str, UnitEntry]:
    out = {}
    for u in _need(doc.body, "units", list, doc.where()):
        where = doc.where(u.get("code"))
        code = _need(u, "code", str, where)
        try:
            unit = parse_ucum(code)
        except ValueError as exc:
            raise ReferenceDataError(f"{where}: {exc}") from exc
        out[code] = UnitEntry(code, _need(u, "display", str, where), _need(u, "kind", str, where), unit)
    return out


def _read_legacy_map(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"srt_code", "sct_code"} <= set(rows[0]):
        raise ReferenceDataError(f"{path.name}: expected columns srt_code, sct_code")
    return {r["srt_code"]: r["sct_code"] for r in rows}


def _legacy_map() -> dict[str, str]:
    """PS3.16 Annex O pairs, plus the hand-checked pairs Annex O lacks (``srt_to_sct_supplement.csv``)."""
    out = _read_legacy_map(DATA_DIR / "dicom_srt_to_sct.csv")
    for srt, sct in _read_legacy_map(DATA_DIR / "srt_to_sct_supplement.csv").items():
        if out.get(srt, sct) != sct:
            raise ReferenceDataError(f"srt_to_sct_supplement.csv: {srt} -> {sct} contradicts Annex O ({out[srt]})")
        out[srt] = sct
    return out


def _shipped_docs() -> list[_Doc]:
    return [_read_json(p, "shipped") for p in sorted(DATA_DIR.glob("*.json"))]


def _site_docs(site_dir: Path) -> list[_Doc]:
    docs = [_read_json(p, "site") for p in sorted(site_dir.rglob("*.json"))]
    for doc in docs:
        if doc.kind in SHIPPED_ONLY_KINDS:
            raise ReferenceDataError(f"{doc.path}: kind {doc.kind!r} cannot be overridden by a site")
        if doc.kind not in SITE_KINDS:
            raise ReferenceDataError(f"{doc.path}: unknown kind {doc.kind!r}; known: {', '.join(SITE_KINDS)}")
    return docs


def _build(site_dir: str | None) -> ReferenceData:
    docs = _shipped_docs()
    if site_dir is not None:
        docs += _site_docs(Path(site_dir))
    by_kind: dict[str, list[_Doc]] = {}
    for doc in docs:
        by_kind.setdefault(doc.kind, []).append(doc)
    unknown = set(by_kind) - set(SITE_KINDS) - set(SHIPPED_ONLY_KINDS)
    if unknown:
        raise ReferenceDataError(f"unknown reference-data kinds {sorted(unknown)}")

    def kind_docs(kind: str) -> list[_Doc]:
        return by_kind.get(kind, [])

    sets = {kind: _merge_sets(kind, kind_docs(kind)) for kind in SET_KINDS}
    regions = _parse_body_regions(kind_docs("body-regions"))
    procedures = _parse_procedures(kind_docs("standard-procedures"), regions)
    for region in regions.values():
        for other in region.within:
            if other not in regions:
                raise ReferenceDataError(f"body region {region.id!r}: 'within' names unknown region {other!r}")
    code_systems: dict[str, CodeSystemData] = {}
    for doc in kind_docs("code-system-fragment"):
        cs = _parse_code_fragment(doc)
        code_systems[cs.system] = cs
    for doc in kind_docs("dacs-code-systems"):
        for cs in _parse_dacs_systems(doc):
            code_systems[cs.id] = cs
    units: dict[str, UnitEntry] = {}
    for doc in kind_docs("ucum-units"):
        units.update(_parse_units(doc))
    ref = ReferenceData(
        tissue_weights=_frozen(sets["tissue-weighting-factors"]),
        radiation_weights=_frozen(sets["radiation-weighting-factors"]),
        k_factors=_frozen(sets["ct-k-factors"]),
        drl_sets=_frozen(sets["drl-sets"]),
        ct_dose_check=_frozen(sets["ct-dose-check"]),
        fluoro_thresholds=_frozen(sets["fluoro-thresholds"]),
        dose_limits=_frozen(sets["dose-limits"]),
        ssde_fits=_frozen(sets["ssde-coefficients"]),
        typical_doses=_frozen(sets["typical-doses"]),
        backgrounds=_frozen(_parse_backgrounds(kind_docs("typical-doses"))),
        projection_coefficients=_frozen(sets["projection-effective-dose"]),
        body_regions=_frozen(regions),
        standard_procedures=_frozen(procedures),
        protocol_map=_parse_protocol_map(kind_docs("protocol-map"), regions, procedures),
        policy=_parse_policy(kind_docs("evaluation-policy")),
        code_systems=_frozen(code_systems),
        legacy_srt_to_sct=_frozen(_legacy_map()),
        units=_frozen(units),
        file_versions=_frozen({f"{d.origin}:{d.path.name}": str(d.body.get("version", "")) for d in docs}),
        snomed_region_index=_frozen({code: r.id for r in regions.values() for code in r.members}),
        site_dir=site_dir,
    )
    _check_policy_references(ref)
    return ref


def _check_policy_references(ref: ReferenceData) -> None:
    """Fail fast when the policy names sets that do not exist (a typo would silently disable a check)."""
    policy = ref.policy
    for icrp, set_ids in policy.k_factor_sets.items():
        for set_id in set_ids:
            kset = ref.k_factors.get(set_id)
            if kset is None:
                raise ReferenceDataError(f"evaluation-policy: unknown k-factor set {set_id!r}")
            if kset.icrp != icrp:
                raise ReferenceDataError(
                    f"evaluation-policy: k-factor set {set_id!r} is {kset.icrp}, listed for {icrp}"
                )
    for set_id in policy.drl_set_priority:
        if set_id not in ref.drl_sets:
            raise ReferenceDataError(f"evaluation-policy: unknown DRL set {set_id!r}")
    for set_id in policy.fluoro_threshold_sets:
        if set_id not in ref.fluoro_thresholds:
            raise ReferenceDataError(f"evaluation-policy: unknown fluoroscopy threshold set {set_id!r}")
    for set_id in policy.ct_dose_check_sets:
        if set_id not in ref.ct_dose_check:
            raise ReferenceDataError(f"evaluation-policy: unknown CT dose-check set {set_id!r}")
    for dset in ref.drl_sets.values():
        for entry in dset.entries:
            if entry.exam not in ref.standard_procedures:
                raise ReferenceDataError(f"DRL set {dset.id!r}: unknown standard procedure {entry.exam!r}")
    for tdset in ref.typical_doses.values():
        for typical in tdset.entries:
            if typical.exam not in ref.standard_procedures:
                raise ReferenceDataError(f"typical-dose set {tdset.id!r}: unknown standard procedure {typical.exam!r}")
    for tset in (*ref.ct_dose_check.values(), *ref.fluoro_thresholds.values()):
        for t in tset.thresholds:
            if t.body_region is not None and t.body_region not in ref.body_regions:
                raise ReferenceDataError(f"threshold set {tset.id!r}: unknown body region {t.body_region!r}")


@lru_cache(maxsize=8)
def _load_cached(site_dir: str | None, signature: tuple[tuple[str, int, int], ...]) -> ReferenceData:
    return _build(site_dir)


def _signature(site_dir: Path | None) -> tuple[tuple[str, int, int], ...]:
    if site_dir is None or not site_dir.is_dir():
        return ()
    out = []
    for p in sorted(site_dir.rglob("*.json")):
        st = p.stat()
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def load_reference(site_dir: str | os.PathLike[str] | None = None) -> ReferenceData:
    """The shipped reference data merged with the site's files in ``site_dir`` (if it exists).

    Cached: repeated calls are cheap, and a change to any site file (mtime or size) is picked up on
    the next call, so a physicist's edit takes effect without a restart.

    Raises
    ------
    ReferenceDataError
        If a shipped or site file is malformed, names an unknown kind, set, region or procedure, or
        its numbers fail validation (weights not summing to 1, non-UCUM units, negative values…).
    """
    path = None if site_dir is None else Path(site_dir).resolve()
    if path is not None and not path.is_dir():
        path = None
    return _load_cached(None if path is None else str(path), _signature(path))
