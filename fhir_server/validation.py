"""Validation of every resource before it is written.

Structure is checked with the ``fhir.resources`` R4B models (there is no R4 package; for the types DACS
serves R4B and R4 differ only in ways noted in ``docs/fhir-conformance.md``). The models do not check
required bindings, id length or reference syntax, so those are checked here from the vendored R4
definitions (``fhir_server/definitions/required-bindings.json``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from functools import cache
from importlib import resources
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_server.definitions import SERVED_TYPES
from fhir_server.errors import FhirError, Unprocessable

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
REFERENCE_RE = re.compile(
    r"^(?:#\S*|urn:uuid:[0-9a-fA-F-]{36}|urn:oid:[0-2](?:\.\d+)+|https?://\S+"
    r"|[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?"
    r"|[A-Z][A-Za-z]+\?\S*)$"
)


@cache
def _bindings() -> dict[str, dict[str, frozenset[str]]]:
    text = resources.files("fhir_server.definitions").joinpath("required-bindings.json").read_text("utf-8")
    raw = json.loads(text)["bindings"]
    return {t: {path: frozenset(codes) for path, codes in paths.items()} for t, paths in raw.items()}


def _values_at(node: Any, steps: list[str]) -> list[Any]:
    nodes = [node]
    for step in steps:
        nxt = []
        for n in nodes:
            if isinstance(n, dict) and step in n:
                value = n[step]
                nxt.extend(value if isinstance(value, list) else [value])
        nodes = nxt
    return nodes


def _check_bindings(resource: dict[str, Any]) -> None:
    for path, codes in _bindings().get(resource["resourceType"], {}).items():
        for value in _values_at(resource, path.split(".")[1:]):
            if value not in codes:
                shown = ", ".join(sorted(codes)[:12])
                raise Unprocessable(f"{path} has code {value!r}, which is not in its required value set ({shown})",
                                    code="code-invalid", expression=[path])


def _check_references(node: Any, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                if not REFERENCE_RE.match(value):
                    raise Unprocessable(f"{path}.reference {value!r} is not a valid reference "
                                        "(Type/id, absolute URL, urn:uuid:, urn:oid: or #contained)",
                                        code="value", expression=[f"{path}.reference"])
            elif key != "contained":
                _check_references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            _check_references(item, path)


def _describe(error: ValidationError, type_: str) -> tuple[str, list[str]]:
    lines, paths = [], []
    for item in error.errors()[:5]:
        location = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-"))
        path = f"{type_}.{location}" if location else type_
        paths.append(path)
        lines.append(f"{path}: {item['msg']}")
    more = len(error.errors()) - 5
    if more > 0:
        lines.append(f"… and {more} more")
    return "; ".join(lines), paths


_VALIDATED: OrderedDict[bytes, None] = OrderedDict()
_VALIDATED_MAX = 4096


def validate_resource_cached(resource: dict[str, Any], expected_type: str) -> dict[str, Any]:
    """:func:`validate_resource`, remembering the content it recently accepted.

    Validation is a pure function of the content, so identical content (the same Device or Patient in
    every report of a modality, a re-sent or re-mapped object) is not validated again.
    """
    key = hashlib.blake2b(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
    if key in _VALIDATED:
        _VALIDATED.move_to_end(key)
        return resource
    validate_resource(resource, expected_type)
    _VALIDATED[key] = None
    if len(_VALIDATED) > _VALIDATED_MAX:
        _VALIDATED.popitem(last=False)
    return resource


def validate_resource(resource: Any, expected_type: str | None = None) -> dict[str, Any]:
    """Check ``resource`` and return it; raise :class:`FhirError` (400) or :class:`Unprocessable` (422)."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise FhirError("the body is not a FHIR resource (a JSON object with resourceType)", code="structure")
    type_ = resource["resourceType"]
    if expected_type is not None and type_ != expected_type:
        raise FhirError(f"resourceType {type_!r} does not match the URL's type {expected_type!r}")
    if type_ not in SERVED_TYPES:
        raise FhirError(f"resource type {type_!r} is not served here", status=404, code="not-supported")
    id_ = resource.get("id")
    if id_ is not None and (not isinstance(id_, str) or not ID_RE.match(id_)):
        raise Unprocessable(f"id {id_!r} is invalid: 1 to 64 characters of A-Z a-z 0-9 - .", code="value",
                            expression=[f"{type_}.id"])
    try:
        get_fhir_model_class(type_).model_validate(resource)
    except ValidationError as exc:
        message, paths = _describe(exc, type_)
        raise Unprocessable(message, code="structure", expression=paths) from None
    except (ValueError, TypeError) as exc:
        raise Unprocessable(f"{type_}: {exc}", code="structure") from None
    _check_bindings(resource)
    _check_references(resource, type_)
    return resource
