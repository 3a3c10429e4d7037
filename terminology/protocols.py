"""Protocol standardisation: map an exam to a DACS standard procedure and body region.

Hospitals name the same exam in many ways ("TDM THORACIQUE", "Thorax^Thorax_NON_CON (Adult)",
"CT Chest With Contrast"); DRL comparison and statistics need one name. The evidence, strongest
first (all configurable in ``data/protocol_map.json`` and a site's own ``protocol-map`` file):

1. a procedure code the site has mapped (``code_rules``: RIS/modality procedure codes);
2. a procedure keyword in the descriptions (``CTPA``, ``UROSCANNER``…);
3. body-region keywords in the descriptions, combined (``THORAX`` + ``TAP`` → chest+abdomen+pelvis);
4. the RDSR target regions (CID 4030/4031 codes, legacy SRT translated), combined the same way;
5. a modality default (fluoroscopy and interventional exams have no finer default).

An exam nothing matches is returned with status ``unmapped`` and the reason, for a physicist to map;
after a site adds a rule, re-running ``standardise_exam`` on the stored descriptors re-maps it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from terminology.codes import SCT, Coding, normalise_coding
from terminology.reference import BodyRegion, ProtocolMap, ReferenceData, StandardProcedure, load_reference

MAPPED = "mapped"
UNMAPPED = "unmapped"


@dataclass(frozen=True)
class ExamDescriptor:
    """What is known about an exam that can identify it (all optional except the modality).

    ``target_regions`` are the Target Region (123014) codings of the irradiation events, as DICOM
    (scheme, code) pairs turned into ``Coding`` (``Coding.from_dicom``); localizer events may be left in.
    ``descriptions`` are further free texts: requested procedure description, protocol names…
    """

    modality: str | None
    study_description: str | None = None
    descriptions: tuple[str, ...] = ()
    procedure_codes: tuple[Coding, ...] = ()
    target_regions: tuple[Coding, ...] = ()


@dataclass(frozen=True)
class ProtocolMapping:
    """The outcome of standardisation, with the evidence that decided it."""

    status: str  # "mapped" or "unmapped"
    standard_procedure: StandardProcedure | None
    body_region: BodyRegion | None
    matched_by: str | None  # procedure-code, procedure-keyword, description-regions, target-regions, modality-default
    evidence: tuple[str, ...]
    description_regions: tuple[str, ...] = ()
    target_regions: tuple[str, ...] = ()
    unrecognised_target_regions: tuple[Coding, ...] = ()
    conflicts: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def code(self) -> str | None:
        return self.standard_procedure.code if self.standard_procedure else None


def normalise_text(text: str) -> tuple[str, ...]:
    """Upper-case, strip accents, split on anything not a letter or digit (``"Crâne^C-"`` → CRANE, C)."""
    folded = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(ch for ch in folded if not unicodedata.combining(ch)).upper()
    return tuple(t for t in re.split(r"[^A-Z0-9]+", ascii_text) if t)


def _token_matches(pattern: str, token: str) -> bool:
    return token.startswith(pattern[:-1]) if pattern.endswith("*") else token == pattern


def _find(phrase: tuple[str, ...], tokens: Sequence[str], claimed: set[int]) -> list[int] | None:
    n = len(phrase)
    for i in range(len(tokens) - n + 1):
        span = range(i, i + n)
        if any(j in claimed for j in span):
            continue
        if all(_token_matches(phrase[k], tokens[i + k]) for k in range(n)):
            return list(span)
    return None


def _tokens(exam: ExamDescriptor) -> list[str]:
    out: list[str] = []
    for text in (exam.study_description, *exam.descriptions):
        if text:
            out.extend((*normalise_text(text), "|"))  # "|" never matches: no phrase spans two texts
    return out


def _phrases(words: Iterable[str]) -> list[tuple[str, ...]]:
    return [tuple(w.split()) for w in words if w.strip()]


@lru_cache(maxsize=16)
def _region_phrases(pmap: ProtocolMap) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(region, phrase) pairs of a protocol map, longest phrase first (computed once per map)."""
    candidates = [(region, phrase) for region, words in pmap.region_keywords.items() for phrase in _phrases(words)]
    candidates.sort(key=lambda rp: (-len(rp[1]), -len(" ".join(rp[1]))))
    return tuple(candidates)


def _may_occur(phrase: tuple[str, ...], tokens: Sequence[str], token_set: set[str]) -> bool:
    first = phrase[0]
    return any(t.startswith(first[:-1]) for t in tokens) if first.endswith("*") else first in token_set


def _match_regions(tokens: list[str], pmap: ProtocolMap) -> tuple[list[str], list[str]]:
    """Body regions named in the tokens; longer phrases claim their tokens first."""
    token_set = set(tokens)
    claimed: set[int] = set()
    regions: list[str] = []
    evidence: list[str] = []
    for region, phrase in _region_phrases(pmap):
        if not _may_occur(phrase, tokens, token_set):
            continue
        while (span := _find(phrase, tokens, claimed)) is not None:
            claimed.update(span)
            if region not in regions:
                regions.append(region)
            evidence.append(f"{' '.join(tokens[j] for j in span)} -> {region}")
    return regions, evidence


def _modality(exam: ExamDescriptor, pmap: ProtocolMap) -> str | None:
    if not exam.modality:
        return None
    m = exam.modality.strip().upper()
    return pmap.modality_aliases.get(m, m)


def _combine(region_ids: Iterable[str], modality: str, ref: ReferenceData) -> tuple[str | None, frozenset[str]]:
    """Standard procedure for a set of regions: drop regions absorbed by another present one, then
    look the union of atomic parts up in the modality's region combinations."""
    present = set(region_ids)
    kept = {r for r in present if not any(w in present for w in ref.body_regions[r].within)}
    parts = frozenset(p for r in kept for p in ref.body_regions[r].parts)
    for combo in ref.protocol_map.region_combinations:
        if combo.modality == modality and combo.regions == parts:
            return combo.standard_procedure, parts
    return None, parts


def _with_projection(code: str, tokens: list[str], ref: ReferenceData) -> tuple[str, str | None]:
    found = []
    for projection, words in ref.protocol_map.projection_keywords.items():
        if any(_find(p, tokens, set()) is not None for p in _phrases(words)):
            found.append(projection)
    if len(found) == 1 and f"{code}-{found[0]}" in ref.standard_procedures:
        return f"{code}-{found[0]}", found[0]
    return code, None


def target_regions_to_body_regions(
    codings: Iterable[Coding], reference: ReferenceData | None = None
) -> tuple[tuple[str, ...], tuple[Coding, ...]]:
    """DACS body regions of RDSR target-region codings, and the codings that map to none.

    Legacy SRT/SNM3 codes are translated to SNOMED CT first (PS3.16 Annex O); private (99GEMS),
    empty or unknown codes are returned as unrecognised rather than guessed.
    """
    ref = reference or load_reference()
    regions: list[str] = []
    unknown: list[Coding] = []
    for coding in codings:
        c = normalise_coding(coding, ref)
        region = ref.region_of_snomed(c.code) if c.system == SCT else None
        if region is None:
            if coding not in unknown:
                unknown.append(coding)
        elif region.id not in regions:
            regions.append(region.id)
    return tuple(regions), tuple(unknown)


def standardise_exam(exam: ExamDescriptor, reference: ReferenceData | None = None) -> ProtocolMapping:
    """Map one exam to a standard procedure (see the module docstring for the order of evidence)."""
    ref = reference or load_reference()
    pmap = ref.protocol_map
    modality = _modality(exam, pmap)
    tokens = _tokens(exam)
    desc_regions, desc_evidence = _match_regions(tokens, pmap)
    target_regions, unknown_targets = target_regions_to_body_regions(exam.target_regions, ref)

    def result(code: str, matched_by: str, evidence: Sequence[str], conflicts: Sequence[str] = ()) -> ProtocolMapping:
        proc = ref.standard_procedures[code]
        if modality == "DX":
            code, projection = _with_projection(code, tokens, ref)
            proc = ref.standard_procedures[code]
            if projection:
                evidence = [*evidence, f"projection {projection}"]
        region = ref.body_regions.get(proc.body_region) if proc.body_region else None
        if region is None:  # e.g. fluoroscopy: keep the region the descriptions or targets name, if only one
            named = desc_regions or list(target_regions)
            region = ref.body_regions[named[0]] if len(named) == 1 else None
        return ProtocolMapping(
            MAPPED,
            proc,
            region,
            matched_by,
            tuple(evidence),
            tuple(desc_regions),
            tuple(target_regions),
            unknown_targets,
            tuple(conflicts),
        )

    def not_mapped(reason: str) -> ProtocolMapping:
        return ProtocolMapping(
            UNMAPPED,
            None,
            None,
            None,
            tuple(desc_evidence),
            tuple(desc_regions),
            tuple(target_regions),
            unknown_targets,
            reason=reason,
        )

    for rule in pmap.code_rules:
        for coding in exam.procedure_codes:
            if coding.system == rule.system and coding.code == rule.code:
                return result(rule.standard_procedure, "procedure-code", [f"{rule.system}|{rule.code}"])
    if modality is None:
        return not_mapped("modality unknown")
    for kw_rule in pmap.procedure_keywords:
        if kw_rule.modalities and modality not in kw_rule.modalities:
            continue
        for phrase in _phrases(kw_rule.keywords):
            span = _find(phrase, tokens, set())
            if span is not None:
                return result(
                    kw_rule.standard_procedure,
                    "procedure-keyword",
                    [f"{' '.join(tokens[j] for j in span)} -> {kw_rule.standard_procedure}"],
                )
    conflicts: list[str] = []
    desc_code, desc_parts = _combine(desc_regions, modality, ref) if desc_regions else (None, frozenset())
    target_code, target_parts = _combine(target_regions, modality, ref) if target_regions else (None, frozenset())
    if desc_code and target_code and desc_code != target_code:
        conflicts.append(f"description says {desc_code}, target regions say {target_code}")
    if desc_code:
        return result(desc_code, "description-regions", desc_evidence, conflicts)
    if target_code:
        return result(target_code, "target-regions", [f"target regions {', '.join(target_regions)}"], conflicts)
    default = pmap.modality_defaults.get(modality)
    if default:
        return result(default, "modality-default", [f"modality {modality}"])
    reasons = []
    if desc_regions:
        reasons.append(f"description regions {'+'.join(sorted(desc_parts))} have no {modality} standard procedure")
    if target_regions:
        reasons.append(f"target regions {'+'.join(sorted(target_parts))} have no {modality} standard procedure")
    if not desc_regions and not target_regions:
        reasons.append("no recognised procedure code, keyword or target region")
    return not_mapped("; ".join(reasons))


def unmapped(mappings: Iterable[tuple[str, ProtocolMapping]]) -> list[tuple[str, ProtocolMapping]]:
    """The (exam id, mapping) pairs still unmapped: the work list a physicist maps by hand."""
    return [(exam_id, m) for exam_id, m in mappings if m.status == UNMAPPED]
