"""MPPS fallback dose (mappings.rdsr.mpps): merge of N-CREATE/N-SET, status rules, values and units."""

from __future__ import annotations

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, generate_uid

from mappings.rdsr import (
    MPPS_DOSE_SYSTEM,
    MappingOptions,
    MppsNotCompletedError,
    NoMppsDoseError,
    RdsrMappingError,
    map_mpps_dose,
)
from mappings.rdsr.errors import MalformedReportError
from mappings.rdsr.mpps import DICOM_TAG_SYSTEM, merge_mpps
from tests.mappings.rdsr_checks import check_bundle

DCM = "http://dicom.nema.org/resources/ontology/DCM"


def _create(modality: str, study_uid: str | None = "1.2.3.4.5", accession: str | None = "ACC-9") -> Dataset:
    ds = Dataset()
    ds.PatientID = "P-77"
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientName = "Doe^Jane"
    ds.PatientBirthDate = "19700102"
    ds.PatientSex = "F"
    ds.Modality = modality
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepStartDate = "20240305"
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PerformedStationName = "ROOM3"
    ds.PerformedStationAETitle = "MOD_AE"
    step = Dataset()
    if study_uid:
        step.StudyInstanceUID = study_uid
    if accession:
        step.AccessionNumber = accession
    ds.ScheduledStepAttributesSequence = Sequence([step])
    return ds


def _completed(**values: object) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate = "20240305"
    ds.PerformedProcedureStepEndTime = "104500"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _observation(result) -> dict:  # type: ignore[no-untyped-def]
    found = [e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert len(found) == 1
    return found[0]


def _component(obs: dict, code: str, system: str = DCM) -> list[dict]:
    return [c for c in obs["component"] if c["code"]["coding"][0] == {**c["code"]["coding"][0], "system": system,
                                                                        "code": code}]


def _quantity(obs: dict, code: str) -> tuple[float, str]:
    (comp,) = _component(obs, code)
    q = comp["valueQuantity"]
    return q["value"], q["code"]


def _exposure(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def test_fluoroscopy_mpps_gives_dap_and_fluoro_time_in_ig_units() -> None:
    create = _create("RF")
    done = _completed(ImageAndFluoroscopyAreaDoseProduct="12.5", TotalTimeOfFluoroscopy=184,
                      TotalNumberOfExposures=7, EntranceDoseInmGy="35.2", DistanceSourceToDetector="1100",
                      DistanceSourceToEntrance="650", ExposedArea=[200, 150],
                      ExposureDoseSequence=Sequence([
                          _exposure(RadiationMode="PULSED", KVP="78", XRayTubeCurrentInuA="12500",
                                    ExposureTime=900, FilterType="WEDGE", FilterMaterial="COPPER"),
                          _exposure(RadiationMode="CONTINUOUS", KVP="70")]))
    uid = generate_uid()
    result = map_mpps_dose(create, [done], MappingOptions(timezone="Europe/Paris"), sop_instance_uid=uid)
    check_bundle(result.bundle)
    obs = _observation(result)
    assert obs["identifier"] == [{"system": MPPS_DOSE_SYSTEM, "value": uid}]
    assert obs["code"]["coding"][0]["code"] == "73569-6"
    assert obs["method"]["coding"][0] == {"system": DCM, "code": "113858", "display": "MPPS Content"}
    assert _quantity(obs, "113722") == (1250, "mGy.cm2")  # 12.5 dGy.cm2
    assert _quantity(obs, "113730") == (184, "s")
    assert _component(obs, "113812")[0]["valueInteger"] == 7
    assert _quantity(obs, "111636") == (35.2, "mGy")
    assert _quantity(obs, "113750") == (1100, "mm")
    assert _component(obs, "00400306", DICOM_TAG_SYSTEM)[0]["valueQuantity"]["value"] == 650
    assert _component(obs, "00400303", DICOM_TAG_SYSTEM)[0]["valueString"] == "200\\150 mm"
    kvps = [c["valueQuantity"]["value"] for c in _component(obs, "113733")]
    assert kvps == [78, 70]
    assert [c["valueQuantity"] for c in _component(obs, "113734")] == [
        {"value": 12.5, "unit": "mA", "system": "http://unitsofmeasure.org", "code": "mA"}]
    modes = [c["valueCodeableConcept"]["coding"][0]["code"] for c in _component(obs, "113732")]
    assert modes == ["113631", "113630"]
    assert _component(obs, "113757")[0]["valueCodeableConcept"]["text"] == "COPPER"
    assert obs["effectivePeriod"] == {"start": "2024-03-05T10:15:00+01:00", "end": "2024-03-05T10:45:00+01:00"}
    study = next(e for e in result.bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy")
    assert study["request"]["url"] == "ImagingStudy?identifier=urn:dicom:uid|urn:oid:1.2.3.4.5"
    assert study["resource"]["started"] == "2024-03-05T10:15:00+01:00"
    assert {"system": DCM, "code": "RF"} in study["resource"]["modality"]
    acsn = [i for i in study["resource"]["identifier"]
            if i.get("type", {}).get("coding", [{}])[0].get("code") == "ACSN"]
    assert acsn and acsn[0]["value"] == "ACC-9"
    patient = next(e for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["request"]["method"] == "POST" and "P-77" in patient["request"]["ifNoneExist"]
    assert obs["subject"]["reference"] == patient["fullUrl"]
    assert obs["partOf"] == [{"reference": study["fullUrl"]}]
    assert result.study_instance_uid == "1.2.3.4.5" and result.sop_instance_uid == uid


def test_ct_mpps_with_ctdivol_per_exposure() -> None:
    done = _completed(TotalNumberOfExposures=2, CTExposureSequence=Sequence([
        _exposure(CTDIvol=3.1, KVP="120", XRayTubeCurrentInuA="200000"),
        _exposure(CTDIvol=12.75, KVP="100")]))
    result = map_mpps_dose(_create("CT"), [done], sop_instance_uid=generate_uid())
    check_bundle(result.bundle)
    obs = _observation(result)
    ctdi = _component(obs, "113830")
    assert [(c["valueQuantity"]["value"], c["valueQuantity"]["code"]) for c in ctdi] == [(3.1, "mGy"), (12.75, "mGy")]
    assert [c["code"]["text"] for c in ctdi] == ["Mean CTDIvol (exposure 1)", "Mean CTDIvol (exposure 2)"]
    assert _component(obs, "113734")[0]["valueQuantity"]["value"] == 200  # 200000 µA
    assert not _component(obs, "113722")


def test_mammography_organ_dose_is_average_glandular_dose_in_mgy() -> None:
    done = _completed(OrganDose="0.0125", OrganExposed="BREAST", EntranceDose=0)
    result = map_mpps_dose(_create("MG"), [done], sop_instance_uid=generate_uid())
    check_bundle(result.bundle)
    obs = _observation(result)
    assert _quantity(obs, "111637") == (1.25, "mGy")  # 0.0125 dGy
    assert not _component(obs, "111636")  # Entrance Dose 0 means "not measured"
    other = map_mpps_dose(_create("DX"), [_completed(OrganDose="0.02", OrganExposed="THYROID")],
                          sop_instance_uid=generate_uid())
    (organ,) = _component(_observation(other), "113518")
    assert organ["valueQuantity"]["value"] == 2 and organ["code"]["text"] == "Organ Dose (THYROID)"


def test_integer_entrance_dose_in_dgy_is_converted_and_flagged() -> None:
    result = map_mpps_dose(_create("DX"), [_completed(EntranceDose=3)], sop_instance_uid=generate_uid())
    assert _quantity(_observation(result), "111636") == (300, "mGy")
    assert any("Entrance Dose (0040,0302)" in w for w in result.warnings)


def test_later_n_set_values_win() -> None:
    create = _create("RF")
    create.ImageAndFluoroscopyAreaDoseProduct = "1.0"
    first = Dataset()
    first.ImageAndFluoroscopyAreaDoseProduct = "2.0"
    first.TotalTimeOfFluoroscopy = 10
    merged = merge_mpps(create, [first, _completed(ImageAndFluoroscopyAreaDoseProduct="4.0")])
    assert merged.ImageAndFluoroscopyAreaDoseProduct == 4.0
    assert merged.TotalTimeOfFluoroscopy == 10 and merged.PatientID == "P-77"
    assert create.ImageAndFluoroscopyAreaDoseProduct == 1.0  # inputs untouched
    result = map_mpps_dose(create, [first, _completed(ImageAndFluoroscopyAreaDoseProduct="4.0")],
                           sop_instance_uid=generate_uid())
    assert _quantity(_observation(result), "113722") == (400, "mGy.cm2")


@pytest.mark.parametrize("status", ["IN PROGRESS", "DISCONTINUED", ""])
def test_only_a_completed_step_gives_dose(status: str) -> None:
    update = _completed(ImageAndFluoroscopyAreaDoseProduct="5")
    update.PerformedProcedureStepStatus = status
    with pytest.raises(MppsNotCompletedError) as info:
        map_mpps_dose(_create("RF"), [update], sop_instance_uid=generate_uid())
    assert isinstance(info.value, RdsrMappingError)
    assert "not COMPLETED" in str(info.value)


def test_in_progress_n_create_alone_gives_no_dose() -> None:
    create = _create("RF")
    create.ImageAndFluoroscopyAreaDoseProduct = "5"
    with pytest.raises(MppsNotCompletedError):
        map_mpps_dose(create, [], sop_instance_uid=generate_uid())


def test_missing_study_uid_is_a_clear_error() -> None:
    with pytest.raises(MalformedReportError, match=r"Study Instance UID \(0020,000D\).*\(0040,0270\)"):
        map_mpps_dose(_create("CT", study_uid=None), [_completed(TotalTimeOfFluoroscopy=5)],
                      sop_instance_uid=generate_uid())
    no_sequence = _create("CT")
    del no_sequence.ScheduledStepAttributesSequence
    with pytest.raises(MalformedReportError, match="Study Instance UID"):
        map_mpps_dose(no_sequence, [_completed(TotalTimeOfFluoroscopy=5)], sop_instance_uid=generate_uid())


def test_completed_step_without_dose_values() -> None:
    with pytest.raises(NoMppsDoseError):
        map_mpps_dose(_create("CT"), [_completed(KVP="120")], sop_instance_uid=generate_uid())


def test_mpps_uid_is_taken_from_the_archived_part10_meta() -> None:
    create = _create("RF")
    create.file_meta = FileMetaDataset()
    create.file_meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.99")
    result = map_mpps_dose(create, [_completed(TotalTimeOfFluoroscopy=5)])
    assert _observation(result)["identifier"][0]["value"] == "1.2.826.0.1.99"
    bare = _create("RF")
    with pytest.raises(MalformedReportError, match="UID"):
        map_mpps_dose(bare, [_completed(TotalTimeOfFluoroscopy=5)])


def test_same_input_gives_the_same_bundle_and_no_patient_id_gives_a_placeholder() -> None:
    uid = generate_uid()
    create = _create("RF")
    done = _completed(TotalTimeOfFluoroscopy=5)
    assert map_mpps_dose(create, [done], sop_instance_uid=uid).bundle == map_mpps_dose(
        create, [done], sop_instance_uid=uid).bundle
    del create.PatientID
    result = map_mpps_dose(create, [done], sop_instance_uid=uid)
    check_bundle(result.bundle)
    assert result.patient_identifier == ("urn:dacs:placeholder-patient", "urn:oid:1.2.3.4.5")


def test_malformed_number_is_skipped_with_a_warning() -> None:
    done = _completed(TotalTimeOfFluoroscopy=5)
    done[0x0018115E] = RawDataElement(Tag(0x0018115E), "DS", 4, b"12,5", 0, True, True)  # decimal comma
    result = map_mpps_dose(_create("RF"), [done], sop_instance_uid=generate_uid())
    assert not _component(_observation(result), "113722")
    assert any("ImageAndFluoroscopyAreaDoseProduct" in w for w in result.warnings)
