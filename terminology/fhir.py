"""FHIR R4 terminology resources and the pure ``$lookup``, ``$validate-code`` and ``$translate``.

Builders turn the shipped code systems, value sets and maps into CodeSystem / ValueSet / ConceptMap
JSON (plain dicts, FHIR R4 on the wire); the operations take the operation's input parameters as
Python arguments and return a ``Parameters`` dict, so the server only routes and serialises. Unknown
code systems, value sets or concept maps raise ``UnknownCodeError`` (the route turns it into a 404
OperationOutcome); an unknown *code* in ``$validate-code`` is a normal ``result = false``.

External systems appear as fragments (``content = fragment``): DACS ships the DICOM, SNOMED CT and
LOINC concepts it uses, not the whole terminologies. UCUM is grammar-based, so UCUM codes are
validated by parsing (``terminology.ucum``) rather than by lookup in a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from terminology.codes import DACS_FHIR_BASE, DCM, LOINC, SCT, SRT, UCUM, dacs_system
from terminology.errors import UnitError, UnknownCodeError
from terminology.reference import CodeSystemData, Concept, ReferenceData, Source, load_reference
from terminology.ucum import parse_ucum

PUBLISHER = "DACS"
STATUS = "active"


def _url(resource_type: str, rid: str) -> str:
    return f"{DACS_FHIR_BASE}/{resource_type}/{rid}"


@dataclass(frozen=True)
class _Member:
    system: str
    code: str
    display: str | None


@dataclass(frozen=True)
class _MapEntry:
    source_system: str
    source_code: str
    target_system: str
    target_code: str
    target_display: str | None
    equivalence: str


@dataclass(frozen=True)
class _ConceptMap:
    id: str
    title: str
    description: str
    source_vs: str | None
    target_vs: str | None
    entries: tuple[_MapEntry, ...]

    @property
    def url(self) -> str:
        return _url("ConceptMap", self.id)


@dataclass(frozen=True)
class _ValueSet:
    id: str
    title: str
    description: str
    whole_systems: tuple[str, ...]  # include every code of these systems
    members: tuple[_Member, ...]  # plus these enumerated codes

    @property
    def url(self) -> str:
        return _url("ValueSet", self.id)


class TerminologyRegistry:
    """All code systems, value sets and concept maps DACS serves, built from one ``ReferenceData``."""

    def __init__(self, ref: ReferenceData) -> None:
        self.ref = ref
        self.code_systems: dict[str, CodeSystemData] = {}
        for cs in ref.code_systems.values():
            url = dacs_system(cs.id) if cs.complete else cs.system
            self.code_systems[url] = CodeSystemData(
                id=cs.id,
                system=url,
                title=cs.title,
                source=cs.source,
                concepts=cs.concepts,
                name=cs.name,
                version=cs.version,
                complete=cs.complete,
            )
        self._add_dacs_system(
            "body-region",
            "DacsBodyRegion",
            "DACS body regions",
            [
                Concept(r.id, r.display, {"k-region": r.k_region, "parts": sorted(r.parts)})
                for r in ref.body_regions.values()
            ],
        )
        self._add_dacs_system(
            "standard-procedure",
            "DacsStandardProcedure",
            "DACS standard procedures",
            [
                Concept(p.code, p.display, {"modality": p.modality, "body-region": p.body_region})
                for p in ref.standard_procedures.values()
            ],
        )
        self.value_sets = {vs.url: vs for vs in self._value_sets()}
        self.concept_maps = {cm.url: cm for cm in self._concept_maps()}
        self.map_index: dict[tuple[str, str], list[tuple[_ConceptMap, _MapEntry]]] = {}
        for cm in self.concept_maps.values():
            for e in cm.entries:
                self.map_index.setdefault((e.source_system, e.source_code), []).append((cm, e))

    def _add_dacs_system(self, cid: str, name: str, title: str, concepts: Iterable[Concept]) -> None:
        url = dacs_system(cid)
        source = Source(citation=f"DACS vocabulary (terminology/data/{cid.replace('-', '_')}s.json)", evidence="DACS")
        self.code_systems[url] = CodeSystemData(
            id=cid,
            system=url,
            title=title,
            name=name,
            source=source,
            concepts={c.code: c for c in concepts},
            complete=True,
        )

    # -- value sets -------------------------------------------------------------------------------

    def _members(self, system: str, codes: Iterable[str]) -> tuple[_Member, ...]:
        cs = self.code_systems[system]
        return tuple(_Member(system, c, cs.concepts[c].display) for c in codes)

    def _value_sets(self) -> list[_ValueSet]:
        ref = self.ref
        anatomy = sorted({code for r in ref.body_regions.values() for code in r.members}, key=int)
        out = [
            _ValueSet(
                "dose-units",
                "UCUM units for dose data",
                "UCUM units met in dose reports (DACS)",
                (),
                tuple(_Member(UCUM, u.code, u.display) for u in ref.units.values()),
            ),
            _ValueSet("body-region", "DACS body regions", "All DACS body regions", (dacs_system("body-region"),), ()),
            _ValueSet(
                "standard-procedure",
                "DACS standard procedures",
                "All DACS standard procedures",
                (dacs_system("standard-procedure"),),
                (),
            ),
            _ValueSet(
                "dose-finding",
                "DACS dose findings",
                "Codes of DetectedIssue raised by dose evaluation",
                (dacs_system("dose-finding"),),
                (),
            ),
            _ValueSet(
                "calculation-method",
                "DACS calculation methods",
                "Observation.method of calculated doses",
                (dacs_system("calculation-method"),),
                (),
            ),
            _ValueSet(
                "dose-quantity",
                "DACS dose quantities",
                "Dose quantities DRLs and thresholds use",
                (dacs_system("dose-quantity"),),
                (),
            ),
            _ValueSet(
                "ct-anatomy",
                "CT and common anatomic regions",
                "SNOMED CT concepts of DICOM CID 4030 and CID 4031 (and older region codes) "
                "that DACS maps to body regions",
                (),
                self._members(SCT, anatomy),
            ),
            _ValueSet(
                "procedure-reported",
                "Procedure reported",
                "Radiation Dose Summary IG procedure-reported value set (DICOM 121058 values)",
                (),
                self._members(DCM, ["113502", "113704"]) + self._members(SCT, ["77477000", "71651007"]),
            ),
            _ValueSet(
                "dose-summary-component",
                "Radiation dose summary components",
                "component.code values of the Radiation Dose Summary IG (extensible)",
                (),
                self._members(
                    DCM,
                    [
                        "113813",
                        "113725",
                        "111637",
                        "113722",
                        "113726",
                        "113727",
                        "113730",
                        "113731",
                        "113507",
                        "123005",
                    ],
                )
                + self._members(SCT, ["349358000", "89457008", "410675002"]),
            ),
            _ValueSet(
                "ct-acquisition-type",
                "CT acquisition type (DICOM CID 10013)",
                "DICOM CID 10013",
                (),
                self._members(DCM, ["113804", "113805", "113806", "113807"])
                + self._members(SCT, ["116152004", "702569007"]),
            ),
            _ValueSet(
                "ctdi-phantom-type",
                "CTDIw phantom type (DICOM CID 4052 subset)",
                "Phantoms a CTDIvol can be reported for",
                (),
                self._members(DCM, ["113690", "113691", "130541"]),
            ),
            _ValueSet(
                "ssde-method",
                "SSDE method (DICOM CID 10023)",
                "DICOM CID 10023",
                (),
                self._members(DCM, ["113934", "113935", "113936", "113937", "113988", "113989"]),
            ),
        ]
        return out

    # -- concept maps -----------------------------------------------------------------------------

    def _concept_maps(self) -> list[_ConceptMap]:
        ref = self.ref
        sct = self.code_systems[SCT]
        legacy = tuple(
            _MapEntry(
                SRT,
                srt,
                SCT,
                sct_code,
                sct.concepts[sct_code].display if sct_code in sct.concepts else None,
                "equivalent",
            )
            for srt, sct_code in ref.legacy_srt_to_sct.items()
        )
        regions_cs = self.code_systems[dacs_system("body-region")]
        anatomy = []
        for region in ref.body_regions.values():
            for code in sorted(region.members, key=int):
                same = (
                    sct.concepts.get(code) is not None
                    and sct.concepts[code].display.casefold() == region.display.casefold()
                )
                anatomy.append(
                    _MapEntry(
                        SCT,
                        code,
                        regions_cs.system,
                        region.id,
                        region.display,
                        "equivalent" if same else "wider",
                    )
                )
        procedures = tuple(
            _MapEntry(
                dacs_system("standard-procedure"),
                p.code,
                regions_cs.system,
                p.body_region,
                ref.body_regions[p.body_region].display,
                "wider",
            )
            for p in ref.standard_procedures.values()
            if p.body_region
        )
        local = tuple(
            _MapEntry(
                rule.system,
                rule.code,
                dacs_system("standard-procedure"),
                rule.standard_procedure,
                ref.standard_procedures[rule.standard_procedure].display,
                "equivalent",
            )
            for rule in ref.protocol_map.code_rules
        )
        return [
            _ConceptMap(
                "srt-to-snomed",
                "Legacy SNOMED-RT (SRT) to SNOMED CT",
                "DICOM PS3.16 Annex O 'SNOMED Concept ID to SNOMED ID Mapping', used to read legacy RDSR codes",
                None,
                None,
                legacy,
            ),
            _ConceptMap(
                "anatomy-to-body-region",
                "Anatomic region (SNOMED CT) to DACS body region",
                "RDSR Target Region (CID 4030/4031) to the body region used for k-factors and protocol mapping",
                _url("ValueSet", "ct-anatomy"),
                _url("ValueSet", "body-region"),
                tuple(anatomy),
            ),
            _ConceptMap(
                "standard-procedure-to-body-region",
                "DACS standard procedure to body region",
                "Body region of each standard procedure",
                _url("ValueSet", "standard-procedure"),
                _url("ValueSet", "body-region"),
                procedures,
            ),
            _ConceptMap(
                "procedure-code-to-standard-procedure",
                "Local procedure codes to DACS standard procedures",
                "Site-configured procedure-code rules of the protocol map",
                None,
                _url("ValueSet", "standard-procedure"),
                local,
            ),
        ]

    # -- lookups ----------------------------------------------------------------------------------

    def value_set(self, url: str) -> _ValueSet:
        vs = self.value_sets.get(url.split("|", 1)[0])
        if vs is None:
            raise UnknownCodeError(f"unknown ValueSet {url!r}")
        return vs

    def concept_map(self, url: str) -> _ConceptMap:
        cm = self.concept_maps.get(url.split("|", 1)[0])
        if cm is None:
            raise UnknownCodeError(f"unknown ConceptMap {url!r}")
        return cm

    def contains(self, vs: _ValueSet, system: str, code: str) -> _Member | None:
        if system in vs.whole_systems:
            concept = self.code_systems[system].concepts.get(code)
            return _Member(system, code, concept.display) if concept else None
        return next((m for m in vs.members if m.system == system and m.code == code), None)


@lru_cache(maxsize=8)
def registry(reference: ReferenceData | None = None) -> TerminologyRegistry:
    """The registry for ``reference`` (default: shipped data without site overrides); cached."""
    return TerminologyRegistry(reference or load_reference())


# --------------------------------------------------------------------------------------------------
# resource builders


def _resource_head(
    resource_type: str,
    rid: str,
    url: str,
    title: str,
    description: str,
    *,
    name: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """The metadata every terminology resource starts with."""
    out: dict[str, Any] = {"resourceType": resource_type, "id": rid, "url": url}
    if version:
        out["version"] = version
    out.update(
        {
            "name": name or _name(title),
            "title": title,
            "status": STATUS,
            "experimental": False,
            "publisher": PUBLISHER,
            "description": description,
        }
    )
    return out


def _name(text: str) -> str:
    words = "".join(ch if ch.isalnum() else " " for ch in text).split()
    return "".join(w[:1].upper() + w[1:] for w in words)[:255] or "Unnamed"


def _property_value(value: Any) -> dict[str, Any] | None:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, str):
        return {"valueString": value}
    if isinstance(value, int | float):
        return {"valueDecimal": value}
    return None


def code_system_resource(url: str, reference: ReferenceData | None = None) -> dict[str, Any]:
    """A CodeSystem resource for a shipped code system (``content`` fragment for external ones)."""
    reg = registry(reference)
    cs = reg.code_systems.get(url)
    if cs is None:
        raise UnknownCodeError(f"unknown CodeSystem {url!r}")
    edition = f" ({cs.source.edition})" if cs.source.edition else ""
    res = _resource_head(
        "CodeSystem",
        cs.id,
        cs.system,
        cs.title,
        f"{cs.title}. Source: {cs.source.citation}{edition}",
        name=cs.name,
        version=cs.version,
    )
    res["caseSensitive"] = True
    res["content"] = "complete" if cs.complete else "fragment"
    res["count"] = len(cs.concepts)
    property_types: dict[str, str] = {}
    concepts = []
    for concept in cs.concepts.values():
        item: dict[str, Any] = {"code": concept.code, "display": concept.display}
        props = []
        for key, value in concept.properties.items():
            pv = _property_value(value)
            if pv is None:  # absent or a list: not a FHIR concept property
                continue
            property_types.setdefault(key, next(iter(pv))[len("value") :].lower())
            props.append({"code": key, **pv})
        if props:
            item["property"] = props
        concepts.append(item)
    if property_types:
        res["property"] = [{"code": k, "type": t} for k, t in property_types.items()]
    res["concept"] = concepts
    return res


def value_set_resource(url: str, reference: ReferenceData | None = None) -> dict[str, Any]:
    """A ValueSet resource (compose only; ``expand_value_set`` gives the members)."""
    reg = registry(reference)
    vs = reg.value_set(url)
    res = _resource_head("ValueSet", vs.id, vs.url, vs.title, vs.description)
    includes: list[dict[str, Any]] = [{"system": s} for s in vs.whole_systems]
    by_system: dict[str, list[dict[str, str]]] = {}
    for m in vs.members:
        entry = {"code": m.code}
        if m.display:
            entry["display"] = m.display
        by_system.setdefault(m.system, []).append(entry)
    includes += [{"system": system, "concept": concepts} for system, concepts in by_system.items()]
    res["compose"] = {"include": includes}
    return res


def expand_value_set(url: str, reference: ReferenceData | None = None) -> list[dict[str, str]]:
    """The members of a value set as codings (system, code, display)."""
    reg = registry(reference)
    vs = reg.value_set(url)
    out = []
    for system in vs.whole_systems:
        out += [
            {"system": system, "code": c.code, "display": c.display} for c in reg.code_systems[system].concepts.values()
        ]
    out += [{"system": m.system, "code": m.code, **({"display": m.display} if m.display else {})} for m in vs.members]
    return out


def concept_map_resource(url: str, reference: ReferenceData | None = None) -> dict[str, Any]:
    """A ConceptMap resource (R4: ``group.element.target.equivalence``)."""
    reg = registry(reference)
    cm = reg.concept_map(url)
    res = _resource_head("ConceptMap", cm.id, cm.url, cm.title, cm.description)
    if cm.source_vs:
        res["sourceCanonical"] = cm.source_vs
    if cm.target_vs:
        res["targetCanonical"] = cm.target_vs
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in cm.entries:
        target: dict[str, Any] = {"code": e.target_code, "equivalence": e.equivalence}
        if e.target_display:
            target["display"] = e.target_display
        groups.setdefault((e.source_system, e.target_system), []).append({"code": e.source_code, "target": [target]})
    if groups:
        res["group"] = [{"source": s, "target": t, "element": elements} for (s, t), elements in groups.items()]
    return res


def all_resources(reference: ReferenceData | None = None) -> list[dict[str, Any]]:
    """Every CodeSystem, ValueSet and ConceptMap DACS serves (e.g. to seed the store at start-up)."""
    reg = registry(reference)
    return (
        [code_system_resource(url, reference) for url in reg.code_systems]
        + [value_set_resource(url, reference) for url in reg.value_sets]
        + [concept_map_resource(url, reference) for url in reg.concept_maps]
    )


# --------------------------------------------------------------------------------------------------
# operations


def _parameters(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [p for p in parts if p]}


def _coding_value(system: str, code: str, display: str | None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def lookup(
    system: str, code: str, *, version: str | None = None, reference: ReferenceData | None = None
) -> dict[str, Any]:
    """``CodeSystem/$lookup``: name, display and properties of a code.

    Raises ``UnknownCodeError`` for an unknown system or a code not in it (the spec treats both as errors).
    """
    reg = registry(reference)
    if system == UCUM:
        try:
            parse_ucum(code)
        except UnitError as exc:
            raise UnknownCodeError(str(exc)) from exc
        entry = reg.ref.units.get(code)
        return _parameters(
            [
                {"name": "name", "valueString": "UCUM"},
                {"name": "display", "valueString": entry.display if entry else code},
            ]
            + (
                [
                    {
                        "name": "property",
                        "part": [
                            {"name": "code", "valueCode": "kind"},
                            {"name": "value", "valueString": entry.kind},
                        ],
                    }
                ]
                if entry
                else []
            )
        )
    if system == SRT:
        sct_code = reg.ref.legacy_srt_to_sct.get(code)
        if sct_code is None:
            raise UnknownCodeError(f"legacy SNOMED-RT code {code!r} is not in the DICOM Annex O map")
        sct = reg.code_systems[SCT].concepts.get(sct_code)
        return _parameters(
            [
                {"name": "name", "valueString": "SNOMED-RT (legacy, DICOM SRT)"},
                {"name": "display", "valueString": sct.display if sct else f"SNOMED CT {sct_code}"},
                {
                    "name": "property",
                    "part": [
                        {"name": "code", "valueCode": "snomed-ct"},
                        {
                            "name": "value",
                            "valueCoding": _coding_value(SCT, sct_code, sct.display if sct else None),
                        },
                    ],
                },
            ]
        )
    cs = reg.code_systems.get(system)
    if cs is None:
        raise UnknownCodeError(f"unknown CodeSystem {system!r}")
    concept = cs.concepts.get(code)
    if concept is None:
        raise UnknownCodeError(
            f"code {code!r} is not in {system}" + ("" if cs.complete else " (DACS ships a fragment)")
        )
    params: list[dict[str, Any]] = [{"name": "name", "valueString": cs.name or cs.title}]
    if cs.version:
        params.append({"name": "version", "valueString": cs.version})
    params.append({"name": "display", "valueString": concept.display})
    for key, value in concept.properties.items():
        pv = _property_value(value)
        if pv is not None:
            params.append({"name": "property", "part": [{"name": "code", "valueCode": key}, {"name": "value", **pv}]})
    return _parameters(params)


def validate_code(
    code: str,
    *,
    system: str | None = None,
    url: str | None = None,
    display: str | None = None,
    reference: ReferenceData | None = None,
) -> dict[str, Any]:
    """``$validate-code`` against a ValueSet (``url``) or a CodeSystem (``system`` only).

    ``result`` is false for a code outside the set or system, and for a display that does not match
    (case-insensitive); ``message`` says why. Unknown ValueSet/CodeSystem raise ``UnknownCodeError``.
    """
    reg = registry(reference)
    if url is None and system is None:
        raise UnknownCodeError("$validate-code needs a ValueSet url or a code system")
    found_display: str | None = None
    if url is not None:
        vs = reg.value_set(url)
        systems = [system] if system else sorted({m.system for m in vs.members} | set(vs.whole_systems))
        member = next((m for s in systems if (m := reg.contains(vs, s, code))), None)
        if member is None:
            where = f"{system}|{code}" if system else code
            return _parameters(
                [
                    {"name": "result", "valueBoolean": False},
                    {"name": "message", "valueString": f"{where} is not in ValueSet {vs.url}"},
                ]
            )
        found_display = member.display
    elif system == UCUM:
        try:
            parse_ucum(code)
        except UnitError as exc:
            return _parameters(
                [{"name": "result", "valueBoolean": False}, {"name": "message", "valueString": str(exc)}]
            )
        entry = reg.ref.units.get(code)
        found_display = entry.display if entry else None
    else:
        assert system is not None
        if system == SRT:
            if code not in reg.ref.legacy_srt_to_sct:
                return _parameters(
                    [
                        {"name": "result", "valueBoolean": False},
                        {"name": "message", "valueString": f"{code!r} is not a mapped legacy SRT code"},
                    ]
                )
        else:
            cs = reg.code_systems.get(system)
            if cs is None:
                raise UnknownCodeError(f"unknown CodeSystem {system!r}")
            concept = cs.concepts.get(code)
            if concept is None:
                return _parameters(
                    [
                        {"name": "result", "valueBoolean": False},
                        {
                            "name": "message",
                            "valueString": f"{code!r} is not in {system}"
                            + ("" if cs.complete else " (fragment shipped by DACS)"),
                        },
                    ]
                )
            found_display = concept.display
    if display is not None and found_display is not None and display.casefold() != found_display.casefold():
        return _parameters(
            [
                {"name": "result", "valueBoolean": False},
                {"name": "message", "valueString": f"display {display!r} does not match {found_display!r}"},
                {"name": "display", "valueString": found_display},
            ]
        )
    return _parameters(
        [{"name": "result", "valueBoolean": True}]
        + ([{"name": "display", "valueString": found_display}] if found_display else [])
    )


def translate(
    code: str,
    system: str,
    *,
    url: str | None = None,
    target: str | None = None,
    reference: ReferenceData | None = None,
) -> dict[str, Any]:
    """``ConceptMap/$translate``: equivalents of ``system|code`` in the map ``url`` or in every map.

    ``target`` filters by target code system or target ValueSet. A legacy SRT code with no direct
    mapping to the target is translated to SNOMED CT first (the map chain is stated in ``message``).
    """
    reg = registry(reference)
    maps = [reg.concept_map(url)] if url else list(reg.concept_maps.values())

    def matches(src_system: str, src_code: str) -> list[tuple[_ConceptMap, _MapEntry]]:
        return [
            (cm, e)
            for cm, e in reg.map_index.get((src_system, src_code), [])
            if cm in maps and (not target or target in (e.target_system, cm.target_vs))
        ]

    found = matches(system, code)
    message = None
    if not found and system == SRT and code in reg.ref.legacy_srt_to_sct and not url:
        sct_code = reg.ref.legacy_srt_to_sct[code]
        found = matches(SCT, sct_code)
        if found:
            message = f"translated via SNOMED CT {sct_code} (legacy SRT {code})"
    if not found:
        return _parameters(
            [
                {"name": "result", "valueBoolean": False},
                {
                    "name": "message",
                    "valueString": f"no mapping for {system}|{code}" + (f" to {target}" if target else ""),
                },
            ]
        )
    params: list[dict[str, Any]] = [{"name": "result", "valueBoolean": True}]
    if message:
        params.append({"name": "message", "valueString": message})
    for cm, e in found:
        params.append(
            {
                "name": "match",
                "part": [
                    {"name": "equivalence", "valueCode": e.equivalence},
                    {
                        "name": "concept",
                        "valueCoding": _coding_value(e.target_system, e.target_code, e.target_display),
                    },
                    {"name": "source", "valueUri": cm.url},
                ],
            }
        )
    return _parameters(params)


KNOWN_SYSTEMS = (DCM, SCT, SRT, LOINC, UCUM)
