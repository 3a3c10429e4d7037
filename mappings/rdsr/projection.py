"""TID 10001 Projection X-Ray Radiation Dose: TID 10002 accumulated data (one container per plane, with
the INCLUDEd TID 10004 fluoro/acquisition totals, TID 10005 mammography, TID 10007 projection totals
flat under it) and TID 10003 irradiation events (10003A detector, 10003B source, 10003C mechanical
data inline).
"""

from __future__ import annotations

from mappings.rdsr import codes as c
from mappings.rdsr.reading import ValueReader, child_code, child_text, event_uid, usable_code
from mappings.rdsr.records import (
    AccumulatedGlandularDose,
    MammoEvent,
    ProjectionAccumulation,
    ProjectionIrradiationEvent,
    XRayFilter,
)
from mappings.rdsr.sr_tree import Code, ContentItem


def laterality_of(item: ContentItem) -> Code | None:
    """The Laterality concept modifier of ``item`` (legacy G-C171 SRT or its SCT code)."""
    return child_code(item, c.LATERALITY) or child_code(item, c.LATERALITY_SCT)


_BREASTS = {
    "24028007": Code("73056007", "SCT", "Right breast"),
    "7771000": Code("80248007", "SCT", "Left breast"),
    "51440002": Code("63762007", "SCT", "Both breasts"),
}


def breast_with_laterality(laterality: Code | None) -> Code | None:
    """The SNOMED CT breast structure for a laterality (Right/Left/Both qualifier, or already a breast
    code as Hologic and GE send in TID 10005); None when unknown."""
    if laterality is None or laterality.scheme != "SCT":
        return None
    if laterality.value in ("73056007", "80248007", "63762007"):
        return laterality
    return _BREASTS.get(laterality.value)


def reference_point(item: ContentItem) -> str | None:
    """Reference Point Definition (113780), sent as TEXT or as a CODE (CID 10025)."""
    ref = item.find(c.REFERENCE_POINT_DEFINITION)
    if ref is None:
        return None
    if ref.text:
        return ref.text
    return ref.code.meaning or ref.code.value if ref.code is not None else None


def parse_projection_accumulation(container: ContentItem, reader: ValueReader) -> ProjectionAccumulation:
    """TID 10002 Accumulated X-Ray Dose Data (113702) for one plane, as reported."""
    frames = reader.child_number(container, c.TOTAL_NUMBER_OF_RADIOGRAPHIC_FRAMES)
    glandular = []
    for item in container.find_all(c.ACCUMULATED_AGD):
        dose = reader.quantity(item)
        if dose is not None:
            glandular.append(AccumulatedGlandularDose(dose, laterality_of(item)))
    return ProjectionAccumulation(
        plane=child_code(container, c.ACQUISITION_PLANE),
        dap_total=reader.child_quantity(container, c.DAP_TOTAL),
        dose_rp_total=reader.child_quantity(container, c.DOSE_RP_TOTAL),
        fluoro_dap_total=reader.child_quantity(container, c.FLUORO_DAP_TOTAL),
        fluoro_dose_rp_total=reader.child_quantity(container, c.FLUORO_DOSE_RP_TOTAL),
        total_fluoro_time=reader.child_quantity(container, c.TOTAL_FLUORO_TIME),
        acquisition_dap_total=reader.child_quantity(container, c.ACQUISITION_DAP_TOTAL),
        acquisition_dose_rp_total=reader.child_quantity(container, c.ACQUISITION_DOSE_RP_TOTAL),
        total_acquisition_time=reader.child_quantity(container, c.TOTAL_ACQUISITION_TIME),
        total_radiographic_frames=round(frames) if frames is not None else None,
        reference_point=reference_point(container),
        glandular_doses=tuple(glandular),
    )


def parse_filter(container: ContentItem, reader: ValueReader) -> XRayFilter:
    """TID 10003B X-Ray Filters (113771)."""
    return XRayFilter(
        filter_type=child_code(container, c.XRAY_FILTER_TYPE),
        material=child_code(container, c.XRAY_FILTER_MATERIAL),
        thickness_minimum=reader.child_quantity(container, c.XRAY_FILTER_THICKNESS_MIN, "mm"),
        thickness_maximum=reader.child_quantity(container, c.XRAY_FILTER_THICKNESS_MAX, "mm"),
    )


def _all_numbers(container: ContentItem, key: c.Key, reader: ValueReader) -> tuple[float, ...]:
    """Every value of every item named ``key``: per-pulse kVp/mA come as repeated items (GE Pristina,
    IMS Giotto) or as one multi-valued item (Eurocolumbus)."""
    values: list[float] = []
    for item in container.find_all(key):
        values.extend(reader.numbers(item))
    return tuple(values)


def parse_mammography(container: ContentItem, reader: ValueReader) -> MammoEvent:
    """The TID 10003 items that describe a mammography exposure; laterality comes from the Anatomical
    Structure's modifier, or from a Laterality item directly in the event."""
    laterality = None
    for key in (c.ANATOMICAL_STRUCTURE, c.ANATOMICAL_STRUCTURE_SCT, c.TARGET_REGION):
        anatomy = container.find(key)
        if anatomy is not None and laterality is None:
            laterality = laterality_of(anatomy)
    laterality = laterality or laterality_of(container)
    return MammoEvent(
        average_glandular_dose=reader.child_quantity(container, c.AVERAGE_GLANDULAR_DOSE),
        compression_thickness=reader.child_quantity(container, c.COMPRESSION_THICKNESS, "mm"),
        compression_force=reader.child_quantity(container, c.COMPRESSION_FORCE, "N"),
        laterality=laterality,
        view=child_code(container, c.IMAGE_VIEW),
        anode_target_material=child_code(container, c.ANODE_TARGET_MATERIAL),
    )


def parse_projection_event(container: ContentItem, index: int, sop_instance_uid: str, mammography: bool,
                           reader: ValueReader) -> ProjectionIrradiationEvent:
    """TID 10003 Irradiation Event X-Ray Data (container 113706)."""
    uid = event_uid(container, c.IRRADIATION_EVENT_UID, sop_instance_uid, index, "X-ray event", reader)
    exposure_time = (reader.child_quantity(container, c.EXPOSURE_TIME, "ms")
                     or reader.child_quantity(container, c.PROJECTION_EXPOSURE_TIME, "ms"))
    return ProjectionIrradiationEvent(
        event_uid=uid,
        started=child_text(container, c.DATETIME_STARTED),
        event_type=child_code(container, c.IRRADIATION_EVENT_TYPE),
        plane=child_code(container, c.ACQUISITION_PLANE),
        protocol=child_text(container, c.ACQUISITION_PROTOCOL),
        target_region=usable_code(child_code(container, c.TARGET_REGION)),
        reference_point=reference_point(container),
        dap=reader.child_quantity(container, c.DAP),
        dose_rp=reader.child_quantity(container, c.DOSE_RP),
        entrance_exposure_at_rp=reader.child_quantity(container, c.ENTRANCE_EXPOSURE_AT_RP),
        positioner_primary_angle=reader.child_quantity(container, c.POSITIONER_PRIMARY_ANGLE, "deg"),
        positioner_secondary_angle=reader.child_quantity(container, c.POSITIONER_SECONDARY_ANGLE, "deg"),
        fluoro_mode=child_code(container, c.FLUORO_MODE),
        pulse_rate=reader.child_quantity(container, c.PULSE_RATE, "{pulse}/s"),
        number_of_pulses=reader.child_number(container, c.NUMBER_OF_PULSES),
        pulse_width=reader.pulse_mean(container.find(c.PULSE_WIDTH), "ms"),
        irradiation_duration=reader.child_quantity(container, c.IRRADIATION_DURATION, "s"),
        kvp=_all_numbers(container, c.KVP, reader),
        tube_current=_all_numbers(container, c.TUBE_CURRENT, reader),
        average_tube_current=reader.child_quantity(container, c.AVERAGE_TUBE_CURRENT, "mA"),
        exposure_time=exposure_time,
        exposure=reader.child_quantity(container, c.EXPOSURE, "uA.s"),
        focal_spot_size=reader.child_quantity(container, c.FOCAL_SPOT_SIZE, "mm"),
        filters=tuple(parse_filter(f, reader) for f in container.find_all(c.XRAY_FILTERS)),
        collimated_field_area=reader.child_quantity(container, c.COLLIMATED_FIELD_AREA, "m2"),
        distance_source_to_detector=reader.child_quantity(container, c.DISTANCE_SOURCE_TO_DETECTOR, "mm"),
        distance_source_to_rp=reader.child_quantity(container, c.DISTANCE_SOURCE_TO_RP, "mm"),
        exposure_index=reader.child_number(container, c.EXPOSURE_INDEX),
        target_exposure_index=reader.child_number(container, c.TARGET_EXPOSURE_INDEX),
        deviation_index=reader.child_number(container, c.DEVIATION_INDEX),
        half_value_layer=reader.child_quantity(container, c.HALF_VALUE_LAYER, "mm"),
        mammography=parse_mammography(container, reader) if mammography else None,
        comment=child_text(container, c.COMMENT),
    )


def parse_projection_report(items: tuple[ContentItem, ...], sop_instance_uid: str, mammography: bool,
                            reader: ValueReader
                            ) -> tuple[tuple[ProjectionAccumulation, ...], tuple[ProjectionIrradiationEvent, ...]]:
    """All accumulated-data containers (one per plane) and all events of a TID 10001 report."""
    accumulations = tuple(parse_projection_accumulation(i, reader)
                          for i in items if i.is_(c.ACCUMULATED_XRAY_DOSE_DATA))
    containers = [i for i in items if i.is_(c.IRRADIATION_EVENT_XRAY_DATA)]
    events = tuple(parse_projection_event(item, n, sop_instance_uid, mammography, reader)
                   for n, item in enumerate(containers))
    return accumulations, events


def check_projection_totals(accumulations: tuple[ProjectionAccumulation, ...],
                            events: tuple[ProjectionIrradiationEvent, ...], reader: ValueReader) -> None:
    """Warn when the reported DAP total (summed over planes) disagrees with the sum of event DAPs."""
    totals = [a.dap_total.value for a in accumulations if a.dap_total is not None]
    daps = [e.dap.value for e in events if e.dap is not None]
    if not accumulations:
        reader.warn("the report has no Accumulated X-Ray Dose Data (TID 10002)")
    if totals and daps:
        total, summed = sum(totals), sum(daps)
        if abs(total - summed) > max(0.01, 0.01 * total):
            reader.warn(f"Dose Area Product Total {total:g} mGy.cm2 differs from the sum of event DAPs "
                        f"{summed:g} mGy.cm2; the reported total is kept")
