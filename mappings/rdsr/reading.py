"""Reading typed values out of normalised content items, shared by the template parsers.

A :class:`ValueReader` turns NUM items into :class:`DoseQuantity` in the unit DACS emits (converting
with the unit the modality actually sent, and warning when that differs from the template's unit),
CODE items into :class:`Code`, and collects warnings for the report.
"""

from __future__ import annotations

from mappings.rdsr import codes as c
from mappings.rdsr.errors import MalformedNumberError, MalformedReportError
from mappings.rdsr.records import PersonParticipant
from mappings.rdsr.sr_tree import Code, ContentItem
from mappings.rdsr.synthetic import synthetic_event_uid
from mappings.rdsr.units import DoseQuantity, UnitConversionError, concept_units, conversion_factor


class ValueReader:
    """Reads values from content items and remembers the warnings doing so produced."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self._seen: set[str] = set()

    def warn(self, message: str) -> None:
        if message not in self._seen:
            self._seen.add(message)
            self.warnings.append(message)

    def numbers(self, item: ContentItem | None) -> tuple[float, ...]:
        """All values of a NUM item; empty when absent or empty (a quirk, already warned about)."""
        if item is None or item.value_type != "NUM":
            return ()
        if item.number_error is not None:
            raise MalformedNumberError(item.number_error)
        return item.numbers

    def number(self, item: ContentItem | None) -> float | None:
        values = self.numbers(item)
        if not values:
            return None
        if len(values) > 1:
            self.warn(f"{_label(item)} has {len(values)} values where one is expected; the first is used")
        return values[0]

    def quantity(self, item: ContentItem | None, default_unit: str | None = None) -> DoseQuantity | None:
        """The item's value as a DoseQuantity in DACS's unit for that concept (``data/concept_units.csv``)."""
        value = self.number(item)
        if value is None or item is None:
            return None
        sent = item.unit.value if item.unit is not None and item.unit.value else None
        template_unit, fhir_unit = concept_units().get(item.concept.key, ("", "")) if item.concept else ("", "")
        if sent is None:
            sent = template_unit or default_unit
            if sent is None:
                self.warn(f"{_label(item)} has no unit and is ignored")
                return None
            self.warn(f"{_label(item)} has no unit; the template's unit {sent} is assumed")
        elif template_unit and sent != template_unit:
            self.warn(f"{_label(item)} reported in {sent} instead of the template's {template_unit}; "
                      f"converted using the unit sent")
        target = fhir_unit or sent
        try:
            return DoseQuantity(value * conversion_factor(sent, target), target)
        except UnitConversionError as exc:
            raise MalformedReportError(f"{_label(item)}: unit {sent!r} cannot be read as {target!r}") from exc

    def pulse_mean(self, item: ContentItem | None, default_unit: str | None = None) -> DoseQuantity | None:
        """A per-pulse NUM (one value per pulse, Eurocolumbus) as the mean of its non-zero values."""
        values = self.numbers(item)
        if len(values) <= 1 or item is None:
            return self.quantity(item, default_unit)
        nonzero = [v for v in values if v != 0] or [0.0]
        self.warn(f"{_label(item)} is given per pulse ({len(values)} values); the mean of the non-zero "
                  "values is used")
        single = ContentItem(item.value_type, item.relationship, item.concept, unit=item.unit,
                             has_measured_value=True, numbers=(sum(nonzero) / len(nonzero),))
        return self.quantity(single, default_unit)

    def child_quantity(self, parent: ContentItem, key: c.Key, default_unit: str | None = None) -> DoseQuantity | None:
        return self.quantity(parent.find(key), default_unit)

    def child_number(self, parent: ContentItem, key: c.Key) -> float | None:
        return self.number(parent.find(key))

    def child_integer(self, parent: ContentItem, key: c.Key) -> int | None:
        value = self.number(parent.find(key))
        if value is None:
            return None
        if not value.is_integer():
            self.warn(f"{_label(parent.find(key))} is {value}, not a whole number; rounded")
        return round(value)


def event_uid(container: ContentItem, key: c.Key, sop_instance_uid: str, index: int, what: str,
              reader: ValueReader) -> str:
    """The event UID item ``key`` of ``container``, or a stable UID derived from the report (with a warning)."""
    uid = child_text(container, key)
    if uid is None:
        uid = synthetic_event_uid(sop_instance_uid, index)
        reader.warn(f"{what} {index + 1} has no event UID ({key[0]}); {uid} derived from the report's SOP "
                    "Instance UID")
    return uid


def child_code(parent: ContentItem, key: c.Key) -> Code | None:
    """The CODE value of the first child named ``key`` (None when absent or empty)."""
    item = parent.find(key)
    return usable_code(item.code) if item is not None else None


def usable_code(code: Code | None) -> Code | None:
    """``code`` unless it is empty (Spectrum Dynamics sends an empty CodeValue with meaning "Other")."""
    if code is None or (not code.value and not code.meaning):
        return None
    return code


def child_text(parent: ContentItem, key: c.Key) -> str | None:
    """The string value (TEXT, UIDREF, DATETIME, PNAME…) of the first child named ``key``; None if empty."""
    item = parent.find(key)
    if item is None or not item.text:
        return None
    return item.text


def child_yes_no(parent: ContentItem, key: c.Key) -> bool | None:
    code = child_code(parent, key)
    if code is None:
        return None
    if code.key == c.YES:
        return True
    if code.key == c.NO:
        return False
    return None


def parse_person(item: ContentItem) -> PersonParticipant | None:
    """TID 1020 Person Participant rooted at a PNAME item (113870); None when the name is empty.

    Spectrum Dynamics writes the value type as "PERSON NAME"; the concept name decides, not the type.
    """
    name = (item.text or "").strip()
    if not name.strip("^= "):
        return None
    return PersonParticipant(
        name=name,
        role=child_code(item, c.PERSON_ROLE_IN_PROCEDURE),
        person_id=child_text(item, c.PERSON_ID),
        person_id_issuer=child_text(item, c.PERSON_ID_ISSUER),
        organization=child_text(item, c.ORGANIZATION_NAME),
    )


def persons_in(items: tuple[ContentItem, ...]) -> list[PersonParticipant]:
    """Every TID 1020 person directly among ``items``."""
    people = []
    for item in items:
        if item.is_(c.PERSON_NAME):
            person = parse_person(item)
            if person is not None:
                people.append(person)
    return people


def _label(item: ContentItem | None) -> str:
    if item is None or item.concept is None:
        return "numeric item"
    return f"{item.concept.value} {item.concept.meaning}".strip()
