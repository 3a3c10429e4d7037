"""Each vendor quirk on a small generated report (``rdsr_factory``): the corrected value and a warning."""

from __future__ import annotations

import pytest

from mappings.rdsr import DatasetKind, classify_dataset, map_dose_report, parse_dose_report
from mappings.rdsr.fhir import LATERALITY_EXTENSION, PLACEHOLDER_PATIENT_SYSTEM
from tests.mappings import rdsr_factory as f
from tests.mappings.rdsr_checks import (
    by_event_uid,
    check_bundle,
    component_value,
    components,
    resources,
    summary,
)


def mapped(ds, syntax="explicit-le"):
    result = map_dose_report(f.roundtrip(ds, syntax))
    check_bundle(result.bundle)
    return result


def warned(result, text):
    return any(text in w for w in result.warnings)


@pytest.mark.parametrize("syntax", sorted(f.TRANSFER_SYNTAXES))
def test_every_transfer_syntax_gives_the_same_bundle(syntax):
    reference = map_dose_report(f.ct_report(events=[f.ct_event(1, dose_check=True), f.ct_event(2)]))
    result = mapped(f.ct_report(events=[f.ct_event(1, dose_check=True), f.ct_event(2)]), syntax)
    assert result.bundle == reference.bundle
    assert component_value(summary(result.bundle), "113813") == 800


def test_ct_values_and_units():
    result = mapped(f.ct_report(events=[f.ct_event(1, ctdivol="12.5", dlp="500"), f.ct_event(2, dlp="300")]))
    events = by_event_uid(result.bundle)
    first = events[f.uid("ct-event-1")]
    assert component_value(first, "113830") == 12.5
    assert component_value(first, "113838") == 500
    assert component_value(first, "113733") == 120
    assert first["bodySite"]["coding"][0]["code"] == "T-D4000"
    acq = components(first, "113820")[0]["valueCodeableConcept"]["coding"][0]
    assert (acq["system"], acq["code"]) == ("http://snomed.info/sct", "116152004")  # legacy P5-08001
    summ = summary(result.bundle)
    assert component_value(summ, "113813") == 800
    assert components(summ, "113812")[0]["valueInteger"] == 2
    assert summ["effectiveDateTime"] == "2024-03-01T10:17:00Z"


def test_mgycm_is_read_as_mgy_cm():
    result = mapped(f.ct_report(events=[f.ct_event(1, dlp="400", dlp_unit=("mGycm", "UCUM", "mGycm")),
                                        f.ct_event(2)], dlp_total_unit=("mGycm", "UCUM", "mGycm")))
    assert component_value(summary(result.bundle), "113813") == 800
    assert warned(result, "'mGycm' is not UCUM")


@pytest.mark.parametrize(("unit", "value", "expected_mgy_cm2"), [
    (("Gy.m2", "UCUM", "Gy.m2"), "0.0001", 1000),
    (("Gym2", "UCUM", "Gym2"), "1.6e-005", 160),
    (("dGy.cm2", "UCUM", "dGy.cm2"), "12.5", 1250),
    (("Gy.m2", "UCM", "Gy.m2"), "0.0002", 2000),
])
def test_dap_unit_variants_are_converted_to_mgy_cm2(unit, value, expected_mgy_cm2):
    ds = f.projection_report(accumulations=[f.accumulated_projection(dap_total=value, dap_unit=unit)],
                             events=[f.projection_event(1, dap=value, dap_unit=unit)])
    result = mapped(ds)
    assert component_value(summary(result.bundle), "113722") == pytest.approx(expected_mgy_cm2)
    assert component_value(by_event_uid(result.bundle)[f.uid("px-event-1")], "122130") == pytest.approx(
        expected_mgy_cm2)
    if unit[0] != "Gy.m2":
        assert warned(result, unit[0])
    if unit[1] == "UCM":
        assert warned(result, "'UCM' read as 'UCUM'")


def test_mgy_sent_for_a_gy_field_is_not_multiplied():
    ds = f.projection_report(accumulations=[f.accumulated_projection(dose_total="30.5", dose_unit=f.MGY)],
                             events=[f.projection_event(1, dose_rp="0.384", dose_unit=f.MGY)])
    result = mapped(ds)
    assert component_value(summary(result.bundle), "113725") == 30.5
    assert component_value(by_event_uid(result.bundle)[f.uid("px-event-1")], "113738") == 0.384
    assert warned(result, "reported in mGy instead of the template's Gy")


def test_gy_field_is_converted_to_the_igs_mgy():
    result = mapped(f.projection_report())
    assert component_value(summary(result.bundle), "113725") == 4  # 0.004 Gy
    assert component_value(summary(result.bundle), "113730") == 30


@pytest.mark.parametrize(("text", "expected", "warning"), [
    ("10.50/ 15.00", 10.5, "uses '/' between values"),
    ("12,5", 12.5, "decimal comma"),
    ("1.25e+001", 12.5, None),
    ("  12.5 ", 12.5, None),
])
def test_malformed_numbers_are_repaired(text, expected, warning):
    result = mapped(f.ct_report(events=[f.ct_event(1, ctdivol=text), f.ct_event(2)]))
    assert component_value(by_event_uid(result.bundle)[f.uid("ct-event-1")], "113830") == expected
    if warning:
        assert warned(result, warning)


def test_utf8_text_in_a_latin1_file_is_repaired():
    ds = f.ct_report(events=[f.ct_event(1), f.ct_event(2)])
    ds.SpecificCharacterSet = "ISO_IR 100"
    protocol = ds.ContentSequence[-1].ContentSequence[0]
    protocol.TextValue = "Thorax æøå".encode().decode("latin-1")  # UTF-8 bytes, declared Latin-1
    result = mapped(ds)
    values = {c["valueString"] for c in components(by_event_uid(result.bundle)[f.uid("ct-event-2")], "125203")}
    assert values == {"Thorax æøå"}
    assert warned(result, "re-read as UTF-8")


def test_latin1_text_in_a_latin1_file_is_left_alone():
    ds = f.ct_report(events=[f.ct_event(1), f.ct_event(2)])
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ContentSequence[-1].ContentSequence[0].TextValue = "Crâne"
    result = mapped(ds)
    values = {c["valueString"] for c in components(by_event_uid(result.bundle)[f.uid("ct-event-2")], "125203")}
    assert values == {"Crâne"} and not warned(result, "UTF-8")


def test_code_meanings_do_not_matter():
    plain = map_dose_report(f.ct_report())
    ds = f.ct_report()
    for item in _all_items(ds):
        for seq in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            if seq in item:
                item[seq].value[0].CodeMeaning = "renamed by a vendor"
    renamed = map_dose_report(ds)
    assert component_value(summary(renamed.bundle), "113813") == component_value(summary(plain.bundle), "113813")
    assert [component_value(o, "113830") for o in by_event_uid(renamed.bundle).values()] == [
        component_value(o, "113830") for o in by_event_uid(plain.bundle).values()]


def _all_items(ds):
    for item in ds.get("ContentSequence") or ():
        yield item
        yield from _all_items(item)


def test_current_sct_codes_and_legacy_srt_codes_map_alike():
    legacy = map_dose_report(f.ct_report())
    current = map_dose_report(f.ct_report(procedure=("77477000", "SCT", "Computed Tomography X-Ray"),
                                          events=[f.ct_event(1), f.ct_event(2)]))
    assert classify_dataset(f.ct_report(template=None, procedure=("77477000", "SCT", "CT"))) is \
        DatasetKind.CT_DOSE_REPORT
    assert components(summary(legacy.bundle), "121058") == components(summary(current.bundle), "121058")


def test_missing_template_identifier_is_classified_from_content():
    assert classify_dataset(f.ct_report(template=None)) is DatasetKind.CT_DOSE_REPORT
    assert classify_dataset(f.projection_report(template=None)) is DatasetKind.PROJECTION_DOSE_REPORT
    assert classify_dataset(f.mammo_report()) is DatasetKind.PROJECTION_DOSE_REPORT
    assert classify_dataset(f.ct_report(sop_class=f.ENHANCED_SR)) is DatasetKind.CT_DOSE_REPORT


def test_missing_start_time_falls_back_to_header_dates():
    result = mapped(f.ct_report(start=None))
    assert summary(result.bundle)["effectiveDateTime"] == "2024-03-01T10:16:00Z"  # Series Date/Time
    assert warned(result, "Series Date/Time is used")


def test_projection_effective_time_is_the_earliest_event():
    events = [f.projection_event(1, started="20240301103000"), f.projection_event(2, started="20240301101500")]
    result = mapped(f.projection_report(events=events))
    assert summary(result.bundle)["effectiveDateTime"] == "2024-03-01T10:15:00Z"


def test_missing_accession_and_patient_id():
    result = mapped(f.ct_report(patient_id=None, accession=None))
    study = resources(result.bundle, "ImagingStudy")[0]
    assert all(i.get("type", {}).get("coding", [{}])[0].get("code") != "ACSN" for i in study["identifier"])
    patient = resources(result.bundle, "Patient")[0]
    assert patient["identifier"][0]["system"] == PLACEHOLDER_PATIENT_SYSTEM
    assert result.patient_identifier == (PLACEHOLDER_PATIENT_SYSTEM, f"urn:oid:{result.study_instance_uid}")
    assert warned(result, "Accession Number") and warned(result, "placeholder Patient")


def test_accession_becomes_an_acsn_identifier_and_patient_is_conditionally_created():
    result = mapped(f.ct_report())
    study = resources(result.bundle, "ImagingStudy")[0]
    acsn = [i for i in study["identifier"] if i.get("type", {}).get("coding", [{}])[0].get("code") == "ACSN"]
    assert [i["value"] for i in acsn] == ["ACC-1"]
    assert "basedOn" not in study
    patient_entry = next(e for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient_entry["request"] == {"method": "POST", "url": "Patient",
                                        "ifNoneExist": "identifier=urn:dacs:issuer:local|PID-1"}


def test_patient_issuer_becomes_the_identifier_system():
    ds = f.ct_report()
    ds.IssuerOfPatientID = "HOSPITAL A"
    result = mapped(ds)
    assert result.patient_identifier == ("urn:dacs:hl7v2:authority:HOSPITAL%20A", "PID-1")


def test_reported_totals_are_kept_when_they_differ_from_the_events():
    result = mapped(f.ct_report(dlp_total="999.0", total_events="3"))
    assert component_value(summary(result.bundle), "113813") == 999
    assert components(summary(result.bundle), "113812")[0]["valueInteger"] == 3
    assert warned(result, "differs from the sum of event DLPs") and warned(result, "lists 2 events")


def test_missing_total_is_computed_from_events_with_a_warning():
    result = mapped(f.ct_report(dlp_total=None))
    assert component_value(summary(result.bundle), "113813") == 800
    assert warned(result, "sum of the events' DLP is used")


def test_missing_event_uid_gets_a_stable_derived_uid():
    one = mapped(f.ct_report(events=[f.ct_event(1, with_uid=False), f.ct_event(2)]))
    two = mapped(f.ct_report(events=[f.ct_event(1, with_uid=False), f.ct_event(2)]))
    derived = [u for u in one.event_uids if u.startswith("2.25.") and u != f.uid("ct-event-2")]
    assert len(derived) == 1 and one.event_uids == two.event_uids
    assert warned(one, "has no event UID (113769)")


def test_missing_target_region_is_warned():
    result = mapped(f.ct_report(events=[f.ct_event(1, target=None), f.ct_event(2)]))
    assert "bodySite" not in by_event_uid(result.bundle)[f.uid("ct-event-1")]
    assert warned(result, "no usable Target Region")


def test_dose_check_details_and_authorizing_person():
    result = mapped(f.ct_report(events=[f.ct_event(1, dose_check=True), f.ct_event(2)]))
    event = by_event_uid(result.bundle)[f.uid("ct-event-1")]
    assert components(event, "113901")[0]["valueBoolean"] is True
    assert components(event, "113902")[0]["valueBoolean"] is False
    assert component_value(event, "113903") == 300
    assert components(event, "113907")[0]["valueString"] == "clinical need"
    summ = summary(result.bundle)
    assert summ["contained"][0]["name"][0]["family"] == "Authoriser"
    assert summ["performer"] == [{"reference": "#authorizing-1"}]
    assert summ["meta"]["profile"] == ["http://hl7.org/fhir/uv/radiation-dose-summary/StructureDefinition/"
                                       "radiation-dose-summary"]


def test_authorizing_person_with_an_id_becomes_a_conditional_practitioner():
    extra = [f.person("Doc^Dan", f.AUTHORIZING, person_id="D-77")]
    result = mapped(f.ct_report(extra=extra))
    entries = [e for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Practitioner"]
    assert len(entries) == 1
    assert entries[0]["request"]["ifNoneExist"] == "identifier=urn:dacs:issuer:local|D-77"
    assert summary(result.bundle)["performer"] == [{"reference": entries[0]["fullUrl"]}]


def test_no_authorizing_person_means_no_profile_claim():
    result = mapped(f.ct_report())
    assert "meta" not in summary(result.bundle) and warned(result, "performer 1..1")


def test_per_pulse_kvp_is_averaged_over_non_zero_pulses():
    result = mapped(f.projection_report(events=[f.projection_event(1, kvp=("0", "80", "70"))]))
    assert component_value(by_event_uid(result.bundle)[f.uid("px-event-1")], "113733") == 75


def test_biplane_totals_are_summed_over_planes():
    plane_a = f.accumulated_projection(dap_total="0.0001", dose_total="0.002", plane=("113620", "DCM", "Plane A"))
    plane_b = f.accumulated_projection(dap_total="0.00005", dose_total="0.001", plane=("113621", "DCM", "Plane B"))
    result = mapped(f.projection_report(accumulations=[plane_a, plane_b]))
    assert component_value(summary(result.bundle), "113722") == 1500
    assert component_value(summary(result.bundle), "113725") == 3
    assert component_value(summary(result.bundle), "113730") == 60


def test_modality_follows_the_content():
    assert resources(mapped(f.projection_report()).bundle, "Device")[0]["type"]["coding"][0]["code"] == "RF"
    radiography = f.projection_report(events=[f.projection_event(1, fluoro=False)],
                                      accumulations=[f.accumulated_projection(fluoro_time="0")])
    assert resources(mapped(radiography).bundle, "Device")[0]["type"]["coding"][0]["code"] == "DX"
    assert resources(mapped(f.mammo_report()).bundle, "Device")[0]["type"]["coding"][0]["code"] == "MG"


def test_mammography_glandular_dose_per_breast():
    result = mapped(f.mammo_report(left="1.3", right="1.2"))
    agd = {c["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]: c["valueQuantity"]["value"]
           for c in components(summary(result.bundle), "111637")}
    assert agd == {"80248007": 1.3, "73056007": 1.2}
    assert all(c["extension"][0]["url"] == LATERALITY_EXTENSION for c in components(summary(result.bundle), "111637"))
    left = by_event_uid(result.bundle)[f.uid("mg-event-3-1")]
    assert left["bodySite"]["coding"][0]["code"] == "80248007"
    assert component_value(left, "111631") == 1.3
    assert component_value(left, "111633") == 45


def test_radiopharmaceutical_administration():
    result = mapped(f.nm_report(activity="350"))
    summ = summary(result.bundle)
    assert component_value(summ, "113507") == 350
    agent = components(summ, "349358000")[0]["valueCodeableConcept"]
    assert agent["text"] == "Fluorodeoxyglucose F^18^"
    assert summ["effectiveDateTime"] == "2024-03-01T09:15:00Z"
    assert resources(result.bundle, "Device")[0]["type"]["coding"][0]["code"] == "NM"


def test_observer_uid_equal_to_study_uid_is_not_used_for_the_device():
    ds = f.ct_report(observer_uid="1.2.3")
    ds.ContentSequence[2].UID = ds.StudyInstanceUID  # a GE OEC Fluorostar habit
    result = mapped(ds)
    device_entry = next(e for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Device")
    assert device_entry["request"]["url"].startswith("Device?identifier=urn:dacs:device-serial:")
    assert warned(result, "not a usable device UID")


def test_calling_ae_title_completes_the_modality_device():
    from mappings.rdsr import MappingOptions

    result = map_dose_report(f.ct_report(), MappingOptions(calling_ae_title="CT_ROOM_1"))
    device = resources(result.bundle, "Device")[0]
    assert {"system": "urn:dacs:dicom-ae-title", "value": "CT_ROOM_1"}.items() <= device["identifier"][-1].items()
    assert device["meta"]["profile"][0].endswith("modality-device")


def test_site_timezone_applies_to_times_without_offset():
    from mappings.rdsr import MappingOptions

    result = map_dose_report(f.ct_report(), MappingOptions(timezone="Africa/Casablanca"))
    assert summary(result.bundle)["effectiveDateTime"].startswith("2024-03-01T10:17:00+")


def test_parse_dose_report_gives_typed_records():
    study = parse_dose_report(f.roundtrip(f.ct_report()))
    assert study.ct_accumulation is not None and study.ct_accumulation.dlp_total.ucum == "mGy.cm"
    assert [e.mean_ctdivol.value for e in study.ct_events] == [10.0, 10.0]
    assert study.event_uids_in_order == (f.uid("ct-event-1"), f.uid("ct-event-2"))
