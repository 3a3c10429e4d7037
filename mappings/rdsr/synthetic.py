"""Deterministic stand-ins for identifiers a malformed report lacks, so re-sends map identically."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("5b0f6f7e-2f8e-5d3c-9a51-6d1a2c3b4e5f")


def synthetic_event_uid(sop_instance_uid: str, index: int) -> str:
    """A ``2.25`` UID (PS3.5 B.2, UUID-derived) for event ``index`` of the report ``sop_instance_uid``."""
    return f"2.25.{uuid.uuid5(_NAMESPACE, f'{sop_instance_uid}/event/{index}').int}"


def stable_uuid(*parts: str) -> str:
    """A name-based UUID (RFC 4122 v5) of ``parts``: the same input always gives the same ``fullUrl``."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))
