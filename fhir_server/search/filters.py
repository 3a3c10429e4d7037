"""The backend-neutral filter tree that a planned search compiles from.

A search is a tree of :class:`Match` (some index entry of parameter ``p`` satisfies a condition on its
columns), :class:`Exists`, :class:`Not`, :class:`Or` and :class:`And`. ``fhir_server.storage.sqlite``
turns it into SQL with placeholders and ``fhir_server.storage.mongo`` into filter documents; values
are only ever bound as parameters or BSON values, never spliced into query text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Column = Literal["s", "k", "t", "lo", "hi"]
Op = Literal["eq", "null", "prefix", "contains", "lt", "le", "gt", "ge", "in"]


@dataclass(frozen=True)
class Cond:
    """``column op value`` on one index entry (``in`` takes a tuple; ``null`` ignores ``value``)."""

    column: Column
    op: Op
    value: object = None


@dataclass(frozen=True)
class AllConds:
    parts: tuple[CondExpr, ...]


@dataclass(frozen=True)
class AnyConds:
    parts: tuple[CondExpr, ...]


CondExpr = Cond | AllConds | AnyConds


@dataclass(frozen=True)
class Match:
    """Some index entry of parameter ``p`` satisfies ``cond`` (all of the entry's columns at once)."""

    p: str
    cond: CondExpr | None = None


@dataclass(frozen=True)
class Exists:
    """The resource has at least one index entry for parameter ``p``."""

    p: str


@dataclass(frozen=True)
class Not:
    part: Filter


@dataclass(frozen=True)
class Or:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class And:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Nothing:
    """Matches no resource (e.g. a chain whose inner search found nothing)."""


Filter = Match | Exists | Not | Or | And | Nothing


@dataclass(frozen=True)
class SortKey:
    """Sort by parameter ``p`` (``_id`` and ``_lastUpdated`` use the resource columns)."""

    p: str
    param_type: str
    descending: bool = False


def all_of(*conds: CondExpr | None) -> CondExpr | None:
    """AND of the given conditions, dropping ``None``."""
    present = tuple(c for c in conds if c is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else AllConds(present)


def any_of(filters: list[Filter]) -> Filter:
    """OR of filters (a single filter stays as it is)."""
    return filters[0] if len(filters) == 1 else Or(tuple(filters))
