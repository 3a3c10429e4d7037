"""TID 10021 Radiopharmaceutical Radiation Dose: TID 10022 administration event data (container 113502)."""

from __future__ import annotations

from mappings.rdsr import codes as c
from mappings.rdsr.reading import ValueReader, child_code, child_text, event_uid, persons_in
from mappings.rdsr.records import OrganDose, RadiopharmaceuticalAdministration
from mappings.rdsr.sr_tree import ContentItem, iter_tree


def parse_organ_dose(container: ContentItem, reader: ValueReader) -> OrganDose | None:
    """TID 10022 Organ Dose Information (113517): finding site, laterality and the organ dose."""
    item = container.find(c.ORGAN_DOSE)
    dose = reader.quantity(item) if item is not None else None
    if dose is None or item is None:
        return None
    return OrganDose(
        organ=child_code(container, c.FINDING_SITE) or child_code(container, c.FINDING_SITE_SCT),
        dose=dose,
        laterality=child_code(container, c.LATERALITY) or child_code(container, c.LATERALITY_SCT),
        reference_authority=child_text(item, ("121406", "DCM")),
    )


def parse_administration(container: ContentItem, index: int, sop_instance_uid: str,
                         reader: ValueReader) -> RadiopharmaceuticalAdministration:
    """TID 10022 Radiopharmaceutical Administration Event Data (113502)."""
    uid = event_uid(container, c.ADMINISTRATION_EVENT_UID, sop_instance_uid, index, "administration", reader)
    agent_item = container.find(c.RADIOPHARMACEUTICAL_AGENT)
    radionuclide = half_life = None
    if agent_item is not None:
        radionuclide = child_code(agent_item, c.RADIONUCLIDE)
        half_life = reader.child_quantity(agent_item, c.RADIONUCLIDE_HALF_LIFE, "s")
    radionuclide = radionuclide or child_code(container, c.RADIONUCLIDE)
    # Effective Dose may be wrapped in a private container (Siemens 220001 99SHS): search the subtree,
    # skipping organ-dose containers.
    effective = None
    for item in iter_tree(tuple(i for i in container.children if not i.is_(c.ORGAN_DOSE_INFORMATION))):
        if item.is_(c.EFFECTIVE_DOSE):
            effective = reader.quantity(item)
            break
    organs = tuple(o for o in (parse_organ_dose(i, reader) for i in container.find_all(c.ORGAN_DOSE_INFORMATION))
                   if o is not None)
    return RadiopharmaceuticalAdministration(
        event_uid=uid,
        agent=agent_item.code if agent_item is not None else None,
        radionuclide=radionuclide,
        half_life=half_life,
        start=child_text(container, c.RADIOPHARMACEUTICAL_START),
        stop=child_text(container, c.RADIOPHARMACEUTICAL_STOP),
        administered_activity=reader.child_quantity(container, c.ADMINISTERED_ACTIVITY),
        pre_administration_activity=reader.child_quantity(container, c.PRE_ADMINISTRATION_ACTIVITY),
        post_administration_activity=reader.child_quantity(container, c.POST_ADMINISTRATION_ACTIVITY),
        volume=reader.child_quantity(container, c.RADIOPHARMACEUTICAL_VOLUME, "cm3"),
        route=child_code(container, c.ROUTE_OF_ADMINISTRATION),
        effective_dose=effective,
        organ_doses=organs,
        persons=tuple(persons_in(container.children)),
    )


def parse_administrations(items: tuple[ContentItem, ...], sop_instance_uid: str,
                          reader: ValueReader) -> tuple[RadiopharmaceuticalAdministration, ...]:
    """Every administration (113502) of a TID 10021 report, in document order."""
    containers = [i for i in items if i.is_(c.RADIOPHARMACEUTICAL_ADMINISTRATION)]
    return tuple(parse_administration(item, n, sop_instance_uid, reader) for n, item in enumerate(containers))
