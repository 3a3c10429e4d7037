"""The CapabilityStatement: generated from what is actually registered, so it cannot drift.

Search parameters come from the same registry the search engine uses; modifiers and result
parameters are listed as documentation because R4 has no structured place for them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir_server import __version__
from fhir_server.definitions import SERVED_TYPES
from fhir_server.search.registry import params_for

INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                "create", "search-type")
SEARCH_DOC = (
    "Search: types number, date, string, token, reference, quantity (UCUM-aware), uri, composite; prefixes "
    "eq ne gt lt ge le sa eb ap; modifiers :missing :exact :contains :not :text :identifier :[type] "
    ":below :above (uri); chains and _has (inner search capped); _include/_revinclude with :iterate; "
    "_sort on several keys; _count, _offset paging; _total=none|accurate; _summary; _elements. Unknown "
    "parameters are an error unless Prefer: handling=lenient."
)
NON_SEARCHABLE = ("Binary", "Parameters", "Bundle")


def _resource_entry(type_: str) -> dict[str, Any]:
    params = params_for(type_)
    refs = sorted(code for code, p in params.items() if p.type == "reference")
    entry: dict[str, Any] = {
        "type": type_,
        "interaction": [{"code": c} for c in INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "referencePolicy": ["literal"],
        "searchInclude": ["*"] + [f"{type_}:{code}" for code in refs],
        "searchRevInclude": sorted(
            f"{other}:{code}" for other in SERVED_TYPES for code, p in params_for(other).items()
            if p.type == "reference" and (type_ in p.targets or not p.targets)
        ),
        "searchParam": [
            {"name": code, "definition": p.url, "type": p.type}
            for code, p in sorted(params.items()) if p.type != "special"
        ],
    }
    return entry


def capability_statement(base_url: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
    """The server's CapabilityStatement (FHIR R4)."""
    resources = [_resource_entry(t) for t in SERVED_TYPES]
    for op in operations:
        for r in resources:
            if r["type"] in op["resource"]:
                r.setdefault("operation", []).append({"name": op["code"], "definition": op["url"]})
    return {
        "resourceType": "CapabilityStatement",
        "id": "dacs",
        "status": "active",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "publisher": "DACS",
        "kind": "instance",
        "software": {"name": "DACS", "version": __version__},
        "implementation": {"description": "DACS — Dose Archiving and Communication System", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/merge-patch+json"],
        "rest": [{
            "mode": "server",
            "documentation": SEARCH_DOC,
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
        }],
    }
