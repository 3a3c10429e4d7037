"""TID 10011 CT Radiation Dose: TID 10012 accumulated data, TID 10013 irradiation events, TID 10015 dose check.

Values are read as reported. In particular the reported CT Dose Length Product Total is kept even when
it differs from the sum of the events' DLP (a warning says so): the modality's total is the legal
record, and a difference usually means events the report does not list.
"""

from __future__ import annotations

from mappings.rdsr import codes as c
from mappings.rdsr.reading import (
    ValueReader,
    child_code,
    child_text,
    child_yes_no,
    event_uid,
    parse_person,
    usable_code,
)
from mappings.rdsr.records import (
    CtAccumulation,
    CtIrradiationEvent,
    CtSourceParameters,
    DoseCheckDetails,
)
from mappings.rdsr.sr_tree import ContentItem


def parse_ct_accumulation(items: tuple[ContentItem, ...], reader: ValueReader) -> CtAccumulation | None:
    """TID 10012 CT Accumulated Dose Data (container 113811); None when the report has none."""
    container = next((i for i in items if i.is_(c.CT_ACCUMULATED_DOSE_DATA)), None)
    if container is None:
        return None
    return CtAccumulation(
        total_events=reader.child_integer(container, c.TOTAL_NUMBER_OF_IRRADIATION_EVENTS),
        dlp_total=reader.child_quantity(container, c.CT_DLP_TOTAL),
        effective_dose_total=reader.child_quantity(container, c.CT_EFFECTIVE_DOSE_TOTAL),
    )


def parse_dose_check(container: ContentItem, kind: str, reader: ValueReader) -> DoseCheckDetails:
    """TID 10015 CT Dose Check Details: the alert (113900) or notification (113908) container."""
    codes = c.DOSE_CHECK[kind]
    person_item = container.find(c.PERSON_NAME)
    return DoseCheckDetails(
        kind=kind,
        dlp_value_configured=child_yes_no(container, codes.dlp_configured),
        ctdivol_value_configured=child_yes_no(container, codes.ctdivol_configured),
        dlp_value=reader.child_quantity(container, codes.dlp_value),
        ctdivol_value=reader.child_quantity(container, codes.ctdivol_value),
        dlp_forward_estimate=reader.child_quantity(container, codes.dlp_forward_estimate),
        ctdivol_forward_estimate=reader.child_quantity(container, codes.ctdivol_forward_estimate),
        reason_for_proceeding=child_text(container, c.REASON_FOR_PROCEEDING),
        person=parse_person(person_item) if person_item is not None else None,
    )


def parse_ct_source(container: ContentItem, reader: ValueReader) -> CtSourceParameters:
    """TID 10013 CT X-Ray Source Parameters (113831)."""
    return CtSourceParameters(
        identification=child_text(container, c.XRAY_SOURCE_ID),
        kvp=reader.child_quantity(container, c.KVP, "kV"),
        maximum_tube_current=reader.child_quantity(container, c.MAXIMUM_TUBE_CURRENT, "mA"),
        tube_current=reader.child_quantity(container, c.TUBE_CURRENT, "mA"),
        exposure_time_per_rotation=reader.child_quantity(container, c.EXPOSURE_TIME_PER_ROTATION),
    )


def parse_ct_event(container: ContentItem, index: int, sop_instance_uid: str,
                   reader: ValueReader) -> CtIrradiationEvent:
    """TID 10013 CT Irradiation Event Data (one CT Acquisition container, 113819)."""
    uid = event_uid(container, c.IRRADIATION_EVENT_UID, sop_instance_uid, index, "CT event", reader)
    params = container.find(c.CT_ACQUISITION_PARAMETERS) or ContentItem("CONTAINER", "", None)
    dose = container.find(c.CT_DOSE) or ContentItem("CONTAINER", "", None)
    checks = tuple(
        parse_dose_check(item, kind, reader)
        for parent in (dose, container)
        for kind, codes in c.DOSE_CHECK.items()
        for item in parent.find_all(codes.container)
    )
    pitch = reader.child_number(params, c.PITCH_FACTOR)
    target = child_code(container, c.TARGET_REGION)
    if target is None:
        reader.warn("a CT event has no usable Target Region")
    return CtIrradiationEvent(
        event_uid=uid,
        acquisition_type=child_code(container, c.CT_ACQUISITION_TYPE),
        protocol=child_text(container, c.ACQUISITION_PROTOCOL),
        target_region=target,
        procedure_context=child_code(container, c.PROCEDURE_CONTEXT),
        started=child_text(container, c.DATETIME_STARTED),
        exposure_time=reader.child_quantity(params, c.EXPOSURE_TIME, "s"),
        scanning_length=reader.child_quantity(params, c.SCANNING_LENGTH),
        nominal_single_collimation=reader.child_quantity(params, c.NOMINAL_SINGLE_COLLIMATION),
        nominal_total_collimation=reader.child_quantity(params, c.NOMINAL_TOTAL_COLLIMATION),
        pitch_factor=pitch,
        number_of_sources=reader.child_integer(params, c.NUMBER_OF_XRAY_SOURCES),
        sources=tuple(parse_ct_source(s, reader) for s in params.find_all(c.CT_XRAY_SOURCE_PARAMETERS)),
        mean_ctdivol=reader.child_quantity(dose, c.MEAN_CTDIVOL),
        phantom=usable_code(child_code(dose, c.CTDIW_PHANTOM_TYPE)),
        dlp=reader.child_quantity(dose, c.DLP),
        effective_dose=reader.child_quantity(dose, c.EFFECTIVE_DOSE),
        ssde=reader.child_quantity(dose, c.SSDE) or reader.child_quantity(container, c.SSDE),
        dose_checks=checks,
        comment=child_text(container, c.COMMENT),
    )


def parse_ct_events(items: tuple[ContentItem, ...], sop_instance_uid: str,
                    reader: ValueReader) -> tuple[CtIrradiationEvent, ...]:
    """Every TID 10013 event of the report, in document order."""
    containers = [i for i in items if i.is_(c.CT_ACQUISITION)]
    return tuple(parse_ct_event(item, n, sop_instance_uid, reader) for n, item in enumerate(containers))


def check_ct_totals(accumulation: CtAccumulation | None, events: tuple[CtIrradiationEvent, ...],
                    reader: ValueReader) -> None:
    """Warn when the reported totals disagree with the events; the reported totals are kept."""
    if accumulation is None:
        reader.warn("the report has no CT Accumulated Dose Data (TID 10012)")
        return
    if accumulation.total_events is not None and accumulation.total_events != len(events):
        reader.warn(f"Total Number of Irradiation Events is {accumulation.total_events} but the report lists "
                    f"{len(events)} events; the reported total is kept")
    dlps = [e.dlp.value for e in events if e.dlp is not None]
    if accumulation.dlp_total is not None and dlps:
        total = sum(dlps)
        if abs(total - accumulation.dlp_total.value) > max(0.01, 0.005 * accumulation.dlp_total.value):
            reader.warn(f"CT Dose Length Product Total {accumulation.dlp_total.value:g} mGy.cm differs from the "
                        f"sum of event DLPs {total:g} mGy.cm; the reported total is kept")
