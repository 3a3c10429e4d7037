"""Typed intermediate records of a dose report: what the template parsers produce and the FHIR emitter
consumes.

All are frozen dataclasses validated on construction. Dose quantities are held in the units DACS emits
in FHIR (the HL7 radiation dose summary IG's units: mGy, mGy.cm, mGy.cm2, MBq), whatever unit the
modality sent; a record refuses a quantity in another unit or a negative dose, so a unit mistake
cannot travel further than the parser that made it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mappings.rdsr.sr_tree import Code
from mappings.rdsr.units import DoseQuantity


class DoseReportTemplate(enum.Enum):
    """The root template of an SR dose report (PS3.16)."""

    CT = "10011"  # TID 10011 CT Radiation Dose
    PROJECTION = "10001"  # TID 10001 Projection X-Ray Radiation Dose (includes mammography)
    RADIOPHARMACEUTICAL = "10021"  # TID 10021 Radiopharmaceutical Radiation Dose
    PATIENT = "10030"  # TID 10030 Patient Radiation Dose (recognised, not mapped)


def _require_unit(name: str, quantity: DoseQuantity | None, ucum: str, *, non_negative: bool = True) -> None:
    if quantity is None:
        return
    if quantity.ucum != ucum:
        raise ValueError(f"{name} must be in {ucum}, got {quantity.ucum}")
    if non_negative and quantity.value < 0:
        raise ValueError(f"{name} must not be negative, got {quantity.value} {ucum}")


def _require_text(name: str, value: str) -> None:
    if not value or not value.strip():
        raise ValueError(f"{name} is required")


@dataclass(frozen=True, slots=True)
class PatientInfo:
    """Patient module attributes (0010,xxxx) the mapping uses."""

    patient_id: str | None
    issuer_namespace: str | None = None
    issuer_universal_id: str | None = None
    issuer_universal_id_type: str | None = None
    name: str | None = None
    birth_date: str | None = None
    sex: str | None = None


@dataclass(frozen=True, slots=True)
class Equipment:
    """General Equipment module and TID 1002 device observer context, merged (observer wins on identity)."""

    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    software_versions: tuple[str, ...] = ()
    station_name: str | None = None
    device_uid: str | None = None  # (0018,1002)
    observer_uid: str | None = None  # TID 1002 121012 Device Observer UID
    observer_name: str | None = None
    location: str | None = None
    institution: str | None = None


@dataclass(frozen=True, slots=True)
class PersonParticipant:
    """TID 1020 Person Participant."""

    name: str
    role: Code | None = None
    person_id: str | None = None
    person_id_issuer: str | None = None
    organization: str | None = None

    def __post_init__(self) -> None:
        _require_text("person name", self.name)


@dataclass(frozen=True, slots=True)
class StudyContext:
    """Header identity of the report object and of the study it belongs to."""

    study_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str | None = None
    series_number: int | None = None
    instance_number: int | None = None
    accession_number: str | None = None
    accession_issuer_namespace: str | None = None
    accession_issuer_universal_id: str | None = None
    accession_issuer_universal_id_type: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    series_date: str | None = None
    series_time: str | None = None
    content_date: str | None = None
    content_time: str | None = None
    utc_offset: str | None = None
    study_description: str | None = None

    def __post_init__(self) -> None:
        _require_text("Study Instance UID", self.study_instance_uid)
        _require_text("SOP Instance UID", self.sop_instance_uid)


# --- CT: TID 10012 / 10013 / 10015 ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CtSourceParameters:
    """TID 10013 CT X-Ray Source Parameters (one per tube)."""

    identification: str | None
    kvp: DoseQuantity | None = None
    maximum_tube_current: DoseQuantity | None = None
    tube_current: DoseQuantity | None = None
    exposure_time_per_rotation: DoseQuantity | None = None


@dataclass(frozen=True, slots=True)
class DoseCheckDetails:
    """TID 10015 CT Dose Check: the alert (113900) or the notification (113908) block."""

    kind: str  # "alert" or "notification"
    dlp_value_configured: bool | None = None
    ctdivol_value_configured: bool | None = None
    dlp_value: DoseQuantity | None = None
    ctdivol_value: DoseQuantity | None = None
    dlp_forward_estimate: DoseQuantity | None = None
    ctdivol_forward_estimate: DoseQuantity | None = None
    reason_for_proceeding: str | None = None
    person: PersonParticipant | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("alert", "notification"):
            raise ValueError(f"dose check kind must be alert or notification, not {self.kind!r}")
        for name in ("dlp_value", "dlp_forward_estimate"):
            _require_unit(name, getattr(self, name), "mGy.cm")
        for name in ("ctdivol_value", "ctdivol_forward_estimate"):
            _require_unit(name, getattr(self, name), "mGy")


@dataclass(frozen=True, slots=True)
class CtIrradiationEvent:
    """TID 10013 CT Irradiation Event Data (one CT Acquisition container, 113819)."""

    event_uid: str
    acquisition_type: Code | None = None
    protocol: str | None = None
    target_region: Code | None = None
    procedure_context: Code | None = None
    started: str | None = None
    exposure_time: DoseQuantity | None = None
    scanning_length: DoseQuantity | None = None
    nominal_single_collimation: DoseQuantity | None = None
    nominal_total_collimation: DoseQuantity | None = None
    pitch_factor: float | None = None
    number_of_sources: int | None = None
    sources: tuple[CtSourceParameters, ...] = ()
    mean_ctdivol: DoseQuantity | None = None
    phantom: Code | None = None
    dlp: DoseQuantity | None = None
    effective_dose: DoseQuantity | None = None
    ssde: DoseQuantity | None = None
    dose_checks: tuple[DoseCheckDetails, ...] = ()
    comment: str | None = None

    def __post_init__(self) -> None:
        _require_text("Irradiation Event UID", self.event_uid)
        _require_unit("Mean CTDIvol", self.mean_ctdivol, "mGy")
        _require_unit("DLP", self.dlp, "mGy.cm")
        _require_unit("SSDE", self.ssde, "mGy")
        _require_unit("Effective Dose", self.effective_dose, "mSv")


@dataclass(frozen=True, slots=True)
class CtAccumulation:
    """TID 10012 CT Accumulated Dose Data, as reported (never recomputed here)."""

    total_events: int | None = None
    dlp_total: DoseQuantity | None = None
    effective_dose_total: DoseQuantity | None = None

    def __post_init__(self) -> None:
        _require_unit("CT Dose Length Product Total", self.dlp_total, "mGy.cm")
        _require_unit("CT Effective Dose Total", self.effective_dose_total, "mSv")


# --- projection X-ray and mammography: TID 10002 / 10003 / 10004 / 10005 / 10007 -----------------------

@dataclass(frozen=True, slots=True)
class AccumulatedGlandularDose:
    """TID 10005 Accumulated Average Glandular Dose for one breast (or both)."""

    dose: DoseQuantity
    laterality: Code | None = None

    def __post_init__(self) -> None:
        _require_unit("Accumulated Average Glandular Dose", self.dose, "mGy")


@dataclass(frozen=True, slots=True)
class ProjectionAccumulation:
    """TID 10002 Accumulated X-Ray Dose Data for one plane, as reported."""

    plane: Code | None = None
    dap_total: DoseQuantity | None = None
    dose_rp_total: DoseQuantity | None = None
    fluoro_dap_total: DoseQuantity | None = None
    fluoro_dose_rp_total: DoseQuantity | None = None
    total_fluoro_time: DoseQuantity | None = None
    acquisition_dap_total: DoseQuantity | None = None
    acquisition_dose_rp_total: DoseQuantity | None = None
    total_acquisition_time: DoseQuantity | None = None
    total_radiographic_frames: int | None = None
    reference_point: str | None = None
    glandular_doses: tuple[AccumulatedGlandularDose, ...] = ()

    def __post_init__(self) -> None:
        for name in ("dap_total", "fluoro_dap_total", "acquisition_dap_total"):
            _require_unit(name, getattr(self, name), "mGy.cm2")
        for name in ("dose_rp_total", "fluoro_dose_rp_total", "acquisition_dose_rp_total"):
            _require_unit(name, getattr(self, name), "mGy")
        for name in ("total_fluoro_time", "total_acquisition_time"):
            _require_unit(name, getattr(self, name), "s")


@dataclass(frozen=True, slots=True)
class XRayFilter:
    """TID 10003B X-Ray Filters container (113771)."""

    filter_type: Code | None = None
    material: Code | None = None
    thickness_minimum: DoseQuantity | None = None
    thickness_maximum: DoseQuantity | None = None


@dataclass(frozen=True, slots=True)
class MammoEvent:
    """The mammography items of a TID 10003 event (TID 10003 rows that are MC for mammography)."""

    average_glandular_dose: DoseQuantity | None = None
    compression_thickness: DoseQuantity | None = None
    compression_force: DoseQuantity | None = None
    laterality: Code | None = None
    view: Code | None = None
    anode_target_material: Code | None = None

    def __post_init__(self) -> None:
        _require_unit("Average Glandular Dose", self.average_glandular_dose, "mGy")


@dataclass(frozen=True, slots=True)
class ProjectionIrradiationEvent:
    """TID 10003 Irradiation Event X-Ray Data (container 113706), with 10003A/B/C inline."""

    event_uid: str
    started: str | None = None
    event_type: Code | None = None
    plane: Code | None = None
    protocol: str | None = None
    target_region: Code | None = None
    reference_point: str | None = None
    dap: DoseQuantity | None = None
    dose_rp: DoseQuantity | None = None
    entrance_exposure_at_rp: DoseQuantity | None = None
    positioner_primary_angle: DoseQuantity | None = None
    positioner_secondary_angle: DoseQuantity | None = None
    fluoro_mode: Code | None = None
    pulse_rate: DoseQuantity | None = None
    number_of_pulses: float | None = None
    pulse_width: DoseQuantity | None = None
    irradiation_duration: DoseQuantity | None = None
    kvp: tuple[float, ...] = ()
    tube_current: tuple[float, ...] = ()
    average_tube_current: DoseQuantity | None = None
    exposure_time: DoseQuantity | None = None
    exposure: DoseQuantity | None = None
    focal_spot_size: DoseQuantity | None = None
    filters: tuple[XRayFilter, ...] = ()
    collimated_field_area: DoseQuantity | None = None
    distance_source_to_detector: DoseQuantity | None = None
    distance_source_to_rp: DoseQuantity | None = None
    exposure_index: float | None = None
    target_exposure_index: float | None = None
    deviation_index: float | None = None
    half_value_layer: DoseQuantity | None = None
    mammography: MammoEvent | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        _require_text("Irradiation Event UID", self.event_uid)
        _require_unit("Dose Area Product", self.dap, "mGy.cm2")
        _require_unit("Dose (RP)", self.dose_rp, "mGy")
        _require_unit("Entrance Exposure at RP", self.entrance_exposure_at_rp, "mGy")

    @property
    def is_fluoroscopy(self) -> bool:
        return self.event_type is not None and self.event_type.key == ("44491008", "SCT")


# --- radiopharmaceutical: TID 10021 / 10022 ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OrganDose:
    """TID 10022 Organ Dose Information (113517)."""

    organ: Code | None
    dose: DoseQuantity
    laterality: Code | None = None
    reference_authority: str | None = None

    def __post_init__(self) -> None:
        _require_unit("Organ Dose", self.dose, "mGy")


@dataclass(frozen=True, slots=True)
class RadiopharmaceuticalAdministration:
    """TID 10022 Radiopharmaceutical Administration Event Data (container 113502)."""

    event_uid: str
    agent: Code | None = None
    radionuclide: Code | None = None
    half_life: DoseQuantity | None = None
    start: str | None = None
    stop: str | None = None
    administered_activity: DoseQuantity | None = None
    pre_administration_activity: DoseQuantity | None = None
    post_administration_activity: DoseQuantity | None = None
    volume: DoseQuantity | None = None
    route: Code | None = None
    effective_dose: DoseQuantity | None = None
    organ_doses: tuple[OrganDose, ...] = ()
    persons: tuple[PersonParticipant, ...] = ()

    def __post_init__(self) -> None:
        _require_text("Radiopharmaceutical Administration Event UID", self.event_uid)
        _require_unit("Administered activity", self.administered_activity, "MBq")
        _require_unit("Effective Dose", self.effective_dose, "mSv")


# --- the whole report ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DoseStudy:
    """One parsed dose report: header context, document-level items and the template's content."""

    template: DoseReportTemplate
    context: StudyContext
    patient: PatientInfo
    equipment: Equipment
    procedure_reported: Code | None = None
    acquisition_device_type: Code | None = None
    start_of_irradiation: str | None = None
    end_of_irradiation: str | None = None
    scope_of_accumulation: Code | None = None
    source_of_dose_information: Code | None = None
    persons: tuple[PersonParticipant, ...] = ()
    ct_accumulation: CtAccumulation | None = None
    ct_events: tuple[CtIrradiationEvent, ...] = ()
    projection_accumulations: tuple[ProjectionAccumulation, ...] = ()
    projection_events: tuple[ProjectionIrradiationEvent, ...] = ()
    administrations: tuple[RadiopharmaceuticalAdministration, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        uids = self.event_uids_in_order
        if len(set(uids)) != len(uids):
            raise ValueError("the report lists the same irradiation event UID twice")

    @property
    def event_uids_in_order(self) -> tuple[str, ...]:
        """Irradiation (or administration) event UIDs in document order."""
        return (tuple(e.event_uid for e in self.ct_events)
                + tuple(e.event_uid for e in self.projection_events)
                + tuple(a.event_uid for a in self.administrations))

    @property
    def event_uids(self) -> frozenset[str]:
        return frozenset(self.event_uids_in_order)

    @property
    def is_mammography(self) -> bool:
        return self.procedure_reported is not None and self.procedure_reported.key == ("71651007", "SCT")
