"""FHIR terminology resources (validated with fhir.resources R4B) and $lookup / $validate-code / $translate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.conceptmap import ConceptMap
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.valueset import ValueSet

from terminology.codes import DCM, LOINC, SCT, SRT, UCUM, dacs_system
from terminology.errors import UnknownCodeError
from terminology.fhir import (
    all_resources,
    code_system_resource,
    concept_map_resource,
    expand_value_set,
    lookup,
    registry,
    translate,
    validate_code,
    value_set_resource,
)
from terminology.reference import load_reference

BASE = "http://dacs.example.org/fhir"
MODELS = {"CodeSystem": CodeSystem, "ValueSet": ValueSet, "ConceptMap": ConceptMap}


def params(p: dict[str, Any]) -> dict[str, list[Any]]:
    Parameters.model_validate(p)
    out: dict[str, list[Any]] = {}
    for item in p["parameter"]:
        value = next((v for k, v in item.items() if k.startswith("value")), item.get("part"))
        out.setdefault(item["name"], []).append(value)
    return out


def test_every_resource_is_valid_r4() -> None:
    resources = all_resources()
    kinds = {r["resourceType"] for r in resources}
    assert kinds == {"CodeSystem", "ValueSet", "ConceptMap"}
    for resource in resources:
        MODELS[resource["resourceType"]].model_validate(resource)
    urls = [r["url"] for r in resources]
    assert len(urls) == len(set(urls))


def test_external_code_systems_are_fragments_with_the_standard_uris() -> None:
    for system in (DCM, SCT, LOINC):
        cs = code_system_resource(system)
        assert cs["url"] == system and cs["content"] == "fragment" and cs["count"] == len(cs["concept"])
    dcm = {c["code"]: c["display"] for c in code_system_resource(DCM)["concept"]}
    assert dcm["113813"] == "CT Dose Length Product Total" and dcm["113830"] == "Mean CTDIvol"


def test_dacs_code_systems_are_complete_and_carry_properties() -> None:
    cs = code_system_resource(dacs_system("standard-procedure"))
    assert cs["content"] == "complete"
    cap = next(c for c in cs["concept"] if c["code"] == "CT-CAP")
    assert {"code": "body-region", "valueString": "chest_abdomen_pelvis"} in cap["property"]
    assert {p["code"] for p in cs["property"]} == {"modality", "body-region"}


def test_value_set_compose_and_expansion() -> None:
    vs = value_set_resource(f"{BASE}/ValueSet/procedure-reported")
    systems = {inc["system"] for inc in vs["compose"]["include"]}
    assert systems == {DCM, SCT}
    codes = {(c["system"], c["code"]) for c in expand_value_set(f"{BASE}/ValueSet/procedure-reported")}
    assert codes == {(DCM, "113502"), (DCM, "113704"), (SCT, "77477000"), (SCT, "71651007")}
    body = expand_value_set(f"{BASE}/ValueSet/body-region")
    assert len(body) == len(load_reference().body_regions)


def test_concept_maps() -> None:
    cm = concept_map_resource(f"{BASE}/ConceptMap/srt-to-snomed")
    (group,) = cm["group"]
    assert (group["source"], group["target"]) == (SRT, SCT)
    assert len(group["element"]) == len(load_reference().legacy_srt_to_sct)
    anatomy = concept_map_resource(f"{BASE}/ConceptMap/anatomy-to-body-region")
    chest = next(e for e in anatomy["group"][0]["element"] if e["code"] == "816094009")
    assert chest["target"] == [{"code": "chest", "equivalence": "equivalent", "display": "Chest"}]
    liver = next(e for e in anatomy["group"][0]["element"] if e["code"] == "10200004")
    assert liver["target"][0]["code"] == "abdomen" and liver["target"][0]["equivalence"] == "wider"
    empty = concept_map_resource(f"{BASE}/ConceptMap/procedure-code-to-standard-procedure")
    assert "group" not in empty


# --- $lookup -----------------------------------------------------------------------------------


def test_lookup_dcm() -> None:
    out = params(lookup(DCM, "113725"))
    assert out["display"] == ["Dose (RP) Total"]


def test_lookup_legacy_srt_gives_the_snomed_equivalent() -> None:
    out = params(lookup(SRT, "P5-08000"))
    (prop,) = out["property"]
    assert prop[1]["valueCoding"]["code"] == "77477000"


def test_lookup_ucum() -> None:
    assert params(lookup(UCUM, "mGy.cm2"))["display"] == ["milligray square centimetre"]
    assert params(lookup(UCUM, "kg.m"))["display"] == ["kg.m"]
    with pytest.raises(UnknownCodeError):
        lookup(UCUM, "mGycm")


def test_lookup_dacs_concept_properties() -> None:
    out = params(lookup(dacs_system("dose-quantity"), "DLP"))
    props = {p[0]["valueCode"]: p[1] for p in out["property"]}
    assert props["dcm"] == {"name": "value", "valueString": "113813"}


@pytest.mark.parametrize(
    ("system", "code"), [(DCM, "999999"), ("http://example.org/cs", "1"), (SRT, "Z-00000"), (SCT, "22298006")]
)
def test_lookup_unknown(system: str, code: str) -> None:
    with pytest.raises(UnknownCodeError):
        lookup(system, code)


# --- $validate-code ----------------------------------------------------------------------------


def test_validate_code_in_value_set() -> None:
    url = f"{BASE}/ValueSet/dose-summary-component"
    assert params(validate_code("113813", url=url, system=DCM))["result"] == [True]
    assert params(validate_code("349358000", url=url))["result"] == [True]
    out = params(validate_code("113830", url=url, system=DCM))
    assert out["result"] == [False] and "not in ValueSet" in out["message"][0]


def test_validate_code_display() -> None:
    url = f"{BASE}/ValueSet/dose-summary-component"
    assert params(validate_code("113813", url=url, display="ct dose length product total"))["result"] == [True]
    out = params(validate_code("113813", url=url, display="DLP"))
    assert out["result"] == [False] and out["display"] == ["CT Dose Length Product Total"]


def test_validate_code_against_code_systems() -> None:
    assert params(validate_code("113691", system=DCM))["result"] == [True]
    assert params(validate_code("abc", system=DCM))["result"] == [False]
    assert params(validate_code("Gy.m2", system=UCUM))["result"] == [True]
    out = params(validate_code("Gym2", system=UCUM))
    assert out["result"] == [False] and "Gym" in out["message"][0]
    assert params(validate_code("T-D3000", system=SRT))["result"] == [True]
    assert params(validate_code("CT-CAP", system=dacs_system("standard-procedure")))["result"] == [True]
    with pytest.raises(UnknownCodeError):
        validate_code("1", system="http://example.org/unknown")
    with pytest.raises(UnknownCodeError):
        validate_code("1", url=f"{BASE}/ValueSet/nope")
    with pytest.raises(UnknownCodeError):
        validate_code("1")


# --- $translate --------------------------------------------------------------------------------


def test_translate_legacy_code() -> None:
    out = params(translate("P5-40010", SRT))
    assert out["result"] == [True]
    (match,) = out["match"]
    parts = {p["name"]: p for p in match}
    assert parts["concept"]["valueCoding"]["code"] == "71651007"
    assert parts["equivalence"]["valueCode"] == "equivalent"
    assert parts["source"]["valueUri"] == f"{BASE}/ConceptMap/srt-to-snomed"


def test_translate_legacy_region_to_body_region_through_snomed() -> None:
    out = params(translate("T-D4000", SRT, target=dacs_system("body-region")))
    assert out["result"] == [True] and "via SNOMED CT" in out["message"][0]
    (match,) = out["match"]
    assert next(p for p in match if p["name"] == "concept")["valueCoding"]["code"] == "abdomen"


def test_translate_with_a_named_map_and_target_filter() -> None:
    url = f"{BASE}/ConceptMap/standard-procedure-to-body-region"
    out = params(translate("CT-KUB", dacs_system("standard-procedure"), url=url))
    assert out["result"] == [True]
    assert params(translate("CT-KUB", dacs_system("standard-procedure"), target=SCT))["result"] == [False]
    assert params(translate("nope", SRT))["result"] == [False]
    with pytest.raises(UnknownCodeError):
        translate("x", SRT, url=f"{BASE}/ConceptMap/nope")


def test_site_code_rules_appear_in_the_concept_map(tmp_path: Path) -> None:
    (tmp_path / "map.json").write_text(
        json.dumps(
            {
                "kind": "protocol-map",
                "code_rules": [{"system": "urn:ris:local", "code": "TDM-CRANE", "standard_procedure": "CT-HEAD"}],
            }
        )
    )
    ref = load_reference(tmp_path)
    assert registry(ref) is registry(ref)
    out = params(translate("TDM-CRANE", "urn:ris:local", reference=ref))
    assert out["result"] == [True]
    cm = concept_map_resource(f"{BASE}/ConceptMap/procedure-code-to-standard-procedure", ref)
    ConceptMap.model_validate(cm)
    assert cm["group"][0]["element"][0]["target"][0]["code"] == "CT-HEAD"
