"""``_summary`` and ``_elements``: the reduced forms of a resource a client may ask for.

Only applied when asked: otherwise resources are served as the stored JSON bytes.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
_ALWAYS = ("resourceType", "id", "meta")


@cache
def _summary_elements() -> dict[str, frozenset[str]]:
    text = resources.files("fhir_server.definitions").joinpath("summary-elements.json").read_text("utf-8")
    return {t: frozenset(v) for t, v in json.loads(text)["elements"].items()}


def _keeps(key: str, names: frozenset[str] | set[str]) -> bool:
    if key in names:
        return True
    # choice elements: "value" keeps valueQuantity
    return any(key.startswith(n) and len(key) > len(n) and key[len(n)].isupper() for n in names)


def _mark_subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    resource["meta"] = meta
    return resource


def shape(resource: dict[str, Any], summary: str | None, elements: tuple[str, ...]) -> dict[str, Any]:
    """The resource reduced per ``_summary`` (true/text/data/false) and ``_elements``."""
    if elements:
        wanted = set(elements)
        kept = {k: v for k, v in resource.items() if k in _ALWAYS or _keeps(k, wanted)}
        return _mark_subsetted(kept)
    if summary in (None, "false"):
        return resource
    if summary == "true":
        names = _summary_elements().get(resource["resourceType"], frozenset())
        kept = {k: v for k, v in resource.items() if k in _ALWAYS or _keeps(k, names)}
        return _mark_subsetted(kept)
    if summary == "text":
        kept = {k: v for k, v in resource.items() if k in (*_ALWAYS, "text")}
        mandatory = _summary_elements().get(resource["resourceType"], frozenset())
        kept.update({k: v for k, v in resource.items() if k in ("status",) and k in mandatory})
        return _mark_subsetted(kept)
    if summary == "data":
        return _mark_subsetted({k: v for k, v in resource.items() if k != "text"})
    return resource
