"""Codes the dose-report mapping selects content by, as (code value, coding scheme) keys.

Names follow PS3.16 code meanings; tables that are reference data (legacy SRT→SCT, scheme URIs) are
loaded from ``data/`` (see ``data/README.md`` for sources). Content is always matched on these keys
after :func:`canonical_code`, never on CodeMeaning text, whose spelling varies between vendors and
editions.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

from mappings.rdsr.sr_tree import Code

Key = tuple[str, str]


def _dcm(value: str) -> Key:
    return (value, "DCM")


def _sct(value: str) -> Key:
    return (value, "SCT")


# --- document roots and template discriminators (TID 10001 / 10011 / 10021 / 10030) --------------
XRAY_RADIATION_DOSE_REPORT = _dcm("113701")
RADIOPHARMACEUTICAL_RADIATION_DOSE_REPORT = _dcm("113500")
PATIENT_RADIATION_DOSE_REPORT = _dcm("128401")
SIEMENS_RADIATION_SUMMARY = ("C-10", "99SMS_RADSUM")  # proprietary, not a TID 10001 report

PROCEDURE_REPORTED = _dcm("121058")
HAS_INTENT = _sct("363703001")
ASSOCIATED_PROCEDURE = ("G-C2D0", "SRT")  # Siemens RRDSR uses it in place of 121058
PROJECTION_XRAY = _dcm("113704")
COMPUTED_TOMOGRAPHY = _sct("77477000")
MAMMOGRAPHY = _sct("71651007")
ACQUISITION_DEVICE_TYPE = _dcm("122142")
FLUOROSCOPY_GUIDED_SYSTEM = _dcm("113957")

# --- TID 1002 observer context, TID 1020 person participant, TID 10001 document items ----------
OBSERVER_TYPE = _dcm("121005")
DEVICE_OBSERVER_UID = _dcm("121012")
DEVICE_OBSERVER_NAME = _dcm("121013")
DEVICE_OBSERVER_MANUFACTURER = _dcm("121014")
DEVICE_OBSERVER_MODEL = _dcm("121015")
DEVICE_OBSERVER_SERIAL = _dcm("121016")
DEVICE_OBSERVER_LOCATION = _dcm("121017")
START_OF_XRAY_IRRADIATION = _dcm("113809")
END_OF_XRAY_IRRADIATION = _dcm("113810")
SCOPE_OF_ACCUMULATION = _dcm("113705")
STUDY_INSTANCE_UID = _dcm("110180")
PPS_SOP_INSTANCE_UID = _dcm("121126")
SERIES_INSTANCE_UID = _dcm("112002")
SOURCE_OF_DOSE_INFORMATION = _dcm("113854")
PERSON_NAME = _dcm("113870")
PERSON_ID = _dcm("113871")
PERSON_ID_ISSUER = _dcm("113872")
ORGANIZATION_NAME = _dcm("113873")
PERSON_ROLE_IN_PROCEDURE = _dcm("113875")
IRRADIATION_AUTHORIZING = _dcm("113850")
IRRADIATION_ADMINISTERING = _dcm("113851")
COMMENT = _dcm("121106")

# --- TID 10011 / 10012 / 10013 / 10015 (CT) -----------------------------------------------------
CT_ACCUMULATED_DOSE_DATA = _dcm("113811")
TOTAL_NUMBER_OF_IRRADIATION_EVENTS = _dcm("113812")
CT_DLP_TOTAL = _dcm("113813")
CT_EFFECTIVE_DOSE_TOTAL = _dcm("113814")
CT_ACQUISITION = _dcm("113819")
ACQUISITION_PROTOCOL = _dcm("125203")
TARGET_REGION = _dcm("123014")
CT_ACQUISITION_TYPE = _dcm("113820")
PROCEDURE_CONTEXT = _sct("408730004")
IRRADIATION_EVENT_UID = _dcm("113769")
DATETIME_STARTED = _dcm("111526")
CT_ACQUISITION_PARAMETERS = _dcm("113822")
EXPOSURE_TIME = _dcm("113824")
SCANNING_LENGTH = _dcm("113825")
NOMINAL_SINGLE_COLLIMATION = _dcm("113826")
NOMINAL_TOTAL_COLLIMATION = _dcm("113827")
PITCH_FACTOR = _dcm("113828")
NUMBER_OF_XRAY_SOURCES = _dcm("113823")
CT_XRAY_SOURCE_PARAMETERS = _dcm("113831")
XRAY_SOURCE_ID = _dcm("113832")
KVP = _dcm("113733")
MAXIMUM_TUBE_CURRENT = _dcm("113833")
TUBE_CURRENT = _dcm("113734")
EXPOSURE_TIME_PER_ROTATION = _dcm("113834")
CT_DOSE = _dcm("113829")
MEAN_CTDIVOL = _dcm("113830")
CTDIW_PHANTOM_TYPE = _dcm("113835")
MEAN_CTDIFREEAIR = _dcm("113837")
DLP = _dcm("113838")
EFFECTIVE_DOSE = _dcm("113839")
SSDE = _dcm("113930")
XRAY_MODULATION_TYPE = _dcm("113842")
DOSE_CHECK_ALERT_DETAILS = _dcm("113900")
DLP_ALERT_VALUE_CONFIGURED = _dcm("113901")
CTDIVOL_ALERT_VALUE_CONFIGURED = _dcm("113902")
DLP_ALERT_VALUE = _dcm("113903")
CTDIVOL_ALERT_VALUE = _dcm("113904")
ACCUMULATED_DLP_FORWARD_ESTIMATE = _dcm("113905")
ACCUMULATED_CTDIVOL_FORWARD_ESTIMATE = _dcm("113906")
REASON_FOR_PROCEEDING = _dcm("113907")
DOSE_CHECK_NOTIFICATION_DETAILS = _dcm("113908")
DLP_NOTIFICATION_VALUE_CONFIGURED = _dcm("113909")
CTDIVOL_NOTIFICATION_VALUE_CONFIGURED = _dcm("113910")
DLP_NOTIFICATION_VALUE = _dcm("113911")
CTDIVOL_NOTIFICATION_VALUE = _dcm("113912")
DLP_FORWARD_ESTIMATE = _dcm("113913")
CTDIVOL_FORWARD_ESTIMATE = _dcm("113914")


class DoseCheckCodes(NamedTuple):
    """The TID 10015 rows of one dose-check block; alert and notification blocks have the same shape."""

    container: Key
    dlp_configured: Key
    ctdivol_configured: Key
    dlp_value: Key
    ctdivol_value: Key
    dlp_forward_estimate: Key
    ctdivol_forward_estimate: Key


DOSE_CHECK = {
    "alert": DoseCheckCodes(DOSE_CHECK_ALERT_DETAILS, DLP_ALERT_VALUE_CONFIGURED, CTDIVOL_ALERT_VALUE_CONFIGURED,
                            DLP_ALERT_VALUE, CTDIVOL_ALERT_VALUE, ACCUMULATED_DLP_FORWARD_ESTIMATE,
                            ACCUMULATED_CTDIVOL_FORWARD_ESTIMATE),
    "notification": DoseCheckCodes(DOSE_CHECK_NOTIFICATION_DETAILS, DLP_NOTIFICATION_VALUE_CONFIGURED,
                                   CTDIVOL_NOTIFICATION_VALUE_CONFIGURED, DLP_NOTIFICATION_VALUE,
                                   CTDIVOL_NOTIFICATION_VALUE, DLP_FORWARD_ESTIMATE, CTDIVOL_FORWARD_ESTIMATE),
}
YES = _sct("373066001")
NO = _sct("373067005")

# --- TID 10001 / 10002 / 10003 / 10004 / 10005 / 10007 (projection X-ray, mammography) ---------
ACCUMULATED_XRAY_DOSE_DATA = _dcm("113702")
ACQUISITION_PLANE = _dcm("113764")
DAP_TOTAL = _dcm("113722")
DOSE_RP_TOTAL = _dcm("113725")
FLUORO_DAP_TOTAL = _dcm("113726")
FLUORO_DOSE_RP_TOTAL = _dcm("113728")
TOTAL_FLUORO_TIME = _dcm("113730")
ACQUISITION_DAP_TOTAL = _dcm("113727")
ACQUISITION_DOSE_RP_TOTAL = _dcm("113729")
TOTAL_ACQUISITION_TIME = _dcm("113855")
TOTAL_NUMBER_OF_RADIOGRAPHIC_FRAMES = _dcm("113731")
REFERENCE_POINT_DEFINITION = _dcm("113780")
ACCUMULATED_AGD = _dcm("111637")
LATERALITY = ("G-C171", "SRT")
LATERALITY_SCT = _sct("272741003")
IRRADIATION_EVENT_XRAY_DATA = _dcm("113706")
IRRADIATION_EVENT_TYPE = _dcm("113721")
FLUOROSCOPY = _sct("44491008")
DAP = _dcm("122130")
DOSE_RP = _dcm("113738")
ENTRANCE_EXPOSURE_AT_RP = _dcm("111636")
AVERAGE_GLANDULAR_DOSE = _dcm("111631")
HALF_VALUE_LAYER = _dcm("111634")
POSITIONER_PRIMARY_ANGLE = _dcm("112011")
POSITIONER_SECONDARY_ANGLE = _dcm("112012")
XRAY_FILTERS = _dcm("113771")
XRAY_FILTER_TYPE = _dcm("113772")
XRAY_FILTER_MATERIAL = _dcm("113757")
XRAY_FILTER_THICKNESS_MIN = _dcm("113758")
XRAY_FILTER_THICKNESS_MAX = _dcm("113773")
FLUORO_MODE = _dcm("113732")
PULSE_RATE = _dcm("113791")
NUMBER_OF_PULSES = _dcm("113768")
PULSE_WIDTH = _dcm("113793")
IRRADIATION_DURATION = _dcm("113742")
AVERAGE_TUBE_CURRENT = _dcm("113767")
PROJECTION_EXPOSURE_TIME = _dcm("113735")
EXPOSURE = _dcm("113736")
FOCAL_SPOT_SIZE = _dcm("113766")
COLLIMATED_FIELD_AREA = _dcm("113790")
DISTANCE_SOURCE_TO_DETECTOR = _dcm("113750")
DISTANCE_SOURCE_TO_RP = _dcm("113737")
EXPOSURE_INDEX = _dcm("113845")
TARGET_EXPOSURE_INDEX = _dcm("113846")
DEVIATION_INDEX = _dcm("113847")
COMPRESSION_THICKNESS = _dcm("111633")
COMPRESSION_FORCE = _dcm("111647")
ANODE_TARGET_MATERIAL = _dcm("111632")
IMAGE_VIEW = _dcm("111031")
ANATOMICAL_STRUCTURE = ("T-D0005", "SRT")
ANATOMICAL_STRUCTURE_SCT = _sct("91723000")

# --- TID 10021 / 10022 (radiopharmaceutical) -----------------------------------------------------
RADIOPHARMACEUTICAL_ADMINISTRATION = _dcm("113502")
RADIOPHARMACEUTICAL_AGENT = _sct("349358000")
RADIONUCLIDE = _sct("89457008")
RADIONUCLIDE_HALF_LIFE = ("R-42806", "SRT")
ADMINISTRATION_EVENT_UID = _dcm("113503")
RADIOPHARMACEUTICAL_START = _dcm("123003")
RADIOPHARMACEUTICAL_STOP = _dcm("123004")
ADMINISTERED_ACTIVITY = _dcm("113507")
PRE_ADMINISTRATION_ACTIVITY = _dcm("113508")
POST_ADMINISTRATION_ACTIVITY = _dcm("113509")
RADIOPHARMACEUTICAL_VOLUME = _dcm("123005")
ROUTE_OF_ADMINISTRATION = _sct("410675002")
ORGAN_DOSE_INFORMATION = _dcm("113517")
ORGAN_DOSE = _dcm("113518")
FINDING_SITE = ("G-C0E3", "SRT")
FINDING_SITE_SCT = _sct("363698007")

# --- FHIR-side codes ------------------------------------------------------------------------------
IRRADIATION_EVENT = _dcm("113852")
COPIED_FROM_IMAGE_ATTRIBUTES = _dcm("113866")


def data_rows(name: str) -> list[dict[str, str]]:
    """Rows of the CSV table ``data/<name>`` (see ``data/README.md``)."""
    with resources.files("mappings.rdsr").joinpath("data", name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=1)
def legacy_code_map() -> dict[Key, Code]:
    """Legacy (value, scheme) → the current Code (from ``data/legacy_codes.csv``)."""
    return {
        (row["legacy_value"], row["legacy_scheme"]): Code(row["value"], row["scheme"], row["meaning"])
        for row in data_rows("legacy_codes.csv")
    }


@lru_cache(maxsize=1)
def coding_system_uris() -> dict[str, str]:
    """Coding scheme designator → FHIR ``Coding.system`` (from ``data/coding_systems.csv``)."""
    return {row["designator"]: row["uri"] for row in data_rows("coding_systems.csv")}


def canonical_code(code: Code) -> Code:
    """The current code for ``code``: legacy SRT codes become their SNOMED CT equivalent.

    Laterality, anatomical structure and finding site concept names have no verified SCT pair in the
    reference table, so the template parsers accept both forms of those few keys explicitly.
    """
    mapped = legacy_code_map().get(code.key)
    if mapped is None:
        return code
    return Code(mapped.value, mapped.scheme, code.meaning or mapped.meaning)


def fhir_coding(code: Code) -> dict:
    """A FHIR Coding for ``code``; private or unknown schemes keep only the display text."""
    system = coding_system_uris().get(code.scheme)
    if system is None or not code.value:
        return {"display": code.meaning} if code.meaning else {}
    coding = {"system": system, "code": code.value}
    if code.meaning:
        coding["display"] = code.meaning
    return coding


def codeable_concept(code: Code) -> dict:
    """A FHIR CodeableConcept for ``code`` (text only when the scheme has no URI)."""
    coding = fhir_coding(code)
    concept: dict = {}
    if "system" in coding:
        concept["coding"] = [coding]
    if code.meaning:
        concept["text"] = code.meaning
    return concept
