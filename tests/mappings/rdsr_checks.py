"""Assertions every RDSR mapping result must satisfy, shared by the sample and the synthetic tests."""

from __future__ import annotations

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

UCUM = "http://unitsofmeasure.org"


def check_bundle(bundle: dict) -> None:
    """Transaction Bundle, R4B-valid resources, urn:uuid fullUrls, resolvable references, UCUM quantities,
    conditional requests."""
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    Bundle.model_validate(bundle)
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls)), "fullUrls must be unique"
    assert all(u.startswith("urn:uuid:") for u in urls)
    for e in bundle["entry"]:
        resource = e["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        request = e["request"]
        if request["method"] == "PUT":
            assert request["url"].startswith(resource["resourceType"] + "?identifier=")
        else:
            assert request["method"] == "POST" and request["ifNoneExist"].startswith("identifier=")
        contained = {f"#{c['id']}" for c in resource.get("contained", [])}
        for ref in references(resource):
            assert ref in urls or ref in contained, f"dangling reference {ref}"
        for quantity in quantities(resource):
            assert quantity["system"] == UCUM and quantity["code"] == quantity["unit"], quantity


def references(node: object) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            out.append(node["reference"])
        for key, value in node.items():
            if key != "contained":
                out.extend(references(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(references(value))
    return out


def quantities(node: object) -> list[dict]:
    out: list[dict] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "valueQuantity":
                out.append(value)
            else:
                out.extend(quantities(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(quantities(value))
    return out


def resources(bundle: dict, resource_type: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def summary(bundle: dict) -> dict:
    found = [o for o in resources(bundle, "Observation")
             if o["code"]["coding"][0]["code"] == "73569-6"]
    assert len(found) == 1
    return found[0]


def event_observations(bundle: dict) -> list[dict]:
    return [o for o in resources(bundle, "Observation") if o["code"]["coding"][0]["code"] != "73569-6"]


def components(observation: dict, code: str) -> list[dict]:
    return [c for c in observation.get("component", []) if c["code"]["coding"][0]["code"] == code]


def component_value(observation: dict, code: str) -> float | None:
    found = components(observation, code)
    assert len(found) <= 1, f"{code} appears {len(found)} times"
    return found[0]["valueQuantity"]["value"] if found else None


def by_event_uid(bundle: dict) -> dict[str, dict]:
    out = {}
    for obs in event_observations(bundle):
        value = obs["identifier"][0]["value"]
        out[value.removeprefix("urn:oid:")] = obs
    return out
