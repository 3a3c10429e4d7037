"""Transaction Bundle entries for HL7 v2 upserts, and the HL7 v2 update semantics a PUT cannot carry.

Contract with the FHIR server (FHIR R4 §3.1.0.11 transaction processing): every entry has
``fullUrl = urn:uuid:<uuid>``; references between entries use those values; each resource is written
with a *conditional update* ``PUT <Type>?identifier=<system>|<value>`` so a re-sent message upserts
the same record instead of creating a second one.

HL7 v2 distinguishes "field empty" (no change) from ``""`` (delete the value). A PUT replaces the whole
resource, so both would erase what is stored. Each :class:`Upsert` therefore records which top-level
elements the message explicitly cleared; :func:`merge_upsert` applies v2 semantics to the stored
version (sent → replace, ``""`` → remove, not sent → keep) before the PUT. The pipeline calls it when it
has the stored resource; without it, the PUT alone gives "replace everything" semantics.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from mappings.hl7v2.datatypes import search_token

_NAMESPACE = uuid.UUID("8f5f7c52-3c7e-4d0c-9d8e-2a0b3f6f1d41")
"""Namespace for deterministic entry UUIDs (uuid5), so the same message always yields the same Bundle."""


@dataclass(frozen=True)
class IdentifierKey:
    """A business identifier (system, value) used as the conditional-update key."""

    system: str | None
    value: str

    @classmethod
    def of(cls, identifier: dict[str, Any]) -> IdentifierKey:
        return cls(identifier.get("system"), identifier["value"])

    @property
    def token(self) -> str:
        """``system|value`` escaped for a FHIR search URL."""
        return search_token(self.system, self.value)


@dataclass(frozen=True)
class Upsert:
    """One conditional PUT of the Bundle and the v2 semantics that go with it.

    Attributes
    ----------
    full_url
        ``urn:uuid:…`` of the entry (what other entries reference).
    resource_type, url
        The entry's ``request.url``, e.g. ``Patient?identifier=urn:oid:1.2.3|MRN1``.
    keys
        The identifiers the conditional URL searches on (several are OR-ed, e.g. A47 old,new).
    cleared
        Top-level elements the message sent as HL7 null ``""``.
    drop_identifiers
        Identifiers to remove from the stored resource (A47 replaces an identifier).
    """

    full_url: str
    resource_type: str
    url: str
    keys: tuple[IdentifierKey, ...]
    cleared: frozenset[str] = frozenset()
    drop_identifiers: frozenset[IdentifierKey] = frozenset()


@dataclass
class BundleBuilder:
    """Collects entries for one message; UUIDs are derived from the message key and each entry's URL."""

    message_key: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    upserts: list[Upsert] = field(default_factory=list)

    def full_url_for(self, resource_type: str, keys: tuple[IdentifierKey, ...]) -> str:
        """Deterministic ``urn:uuid`` for an entry, so a re-sent message maps to an identical Bundle."""
        name = "\x1f".join([self.message_key, resource_type, *(k.token for k in keys)])
        return f"urn:uuid:{uuid.uuid5(_NAMESPACE, name)}"

    def put(
        self,
        resource: dict[str, Any],
        keys: tuple[IdentifierKey, ...],
        cleared: frozenset[str] = frozenset(),
        drop_identifiers: frozenset[IdentifierKey] = frozenset(),
        full_url: str | None = None,
    ) -> Upsert:
        """Add ``resource`` as a conditional update on ``keys`` (OR-ed) and return its Upsert."""
        resource_type = resource["resourceType"]
        full_url = full_url or self.full_url_for(resource_type, keys)
        url = f"{resource_type}?identifier={','.join(k.token for k in keys)}"
        upsert = Upsert(full_url, resource_type, url, keys, cleared, drop_identifiers)
        self.entries.append(
            {"fullUrl": full_url, "resource": resource, "request": {"method": "PUT", "url": url}}
        )
        self.upserts.append(upsert)
        return upsert

    def bundle(self) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}


def _key_of(item: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in (item.get("system"), item.get("value")))


def _link_key(item: dict[str, Any]) -> tuple[str, ...]:
    other = item.get("other", {})
    return (str(other.get("reference")), str(other.get("identifier")), str(item.get("type")))


def merge_upsert(
    stored: dict[str, Any] | None, mapped: dict[str, Any], upsert: Upsert
) -> dict[str, Any]:
    """The resource to PUT given the stored version: HL7 v2 "empty = keep, ``""`` = clear" semantics.

    Elements in ``mapped`` replace the stored ones, except ``identifier`` and ``link`` which are merged
    (an ADT from one authority must not erase another authority's identifiers, nor a merge's links).
    Elements in ``upsert.cleared`` are removed; ``upsert.drop_identifiers`` are removed from the
    identifiers. ``id`` and ``meta`` of the stored resource are kept for the server.
    """
    if stored is None:
        result = dict(mapped)
    else:
        result = {k: v for k, v in stored.items() if k not in upsert.cleared}
        for key, val in mapped.items():
            if key == "identifier":
                seen = {_key_of(i) for i in val}
                result[key] = list(val) + [i for i in stored.get(key, []) if _key_of(i) not in seen]
            elif key == "link":
                seen = {_link_key(i) for i in val}
                result[key] = list(val) + [i for i in stored.get(key, []) if _link_key(i) not in seen]
            else:
                result[key] = val
    if upsert.drop_identifiers and "identifier" in result:
        dropped = {(str(k.system), k.value) for k in upsert.drop_identifiers}
        result["identifier"] = [i for i in result["identifier"] if _key_of(i) not in dropped]
    return result
