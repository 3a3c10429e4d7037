"""Legacy equipment: dose Observations derived from image header attributes."""

from __future__ import annotations

import pytest

from mappings.rdsr import DatasetKind, NoHeaderDoseError, classify_dataset, map_image_header_dose
from mappings.rdsr.image_header import HEADER_DOSE_SYSTEM
from tests.mappings import rdsr_factory as f
from tests.mappings.rdsr_checks import check_bundle, component_value, components, resources


def observation(result):
    found = resources(result.bundle, "Observation")
    assert len(found) == 1
    return found[0]


def test_ct_image_ctdivol_keyed_by_series_and_acquisition():
    ds = f.image(f.CT_IMAGE, CTDIvol=12.3, KVP="120", XRayTubeCurrent="250", ExposureTime="1000",
                 AcquisitionNumber="2")
    assert classify_dataset(ds) is DatasetKind.IMAGE_HEADER_DOSE
    result = map_image_header_dose(f.roundtrip(ds))
    check_bundle(result.bundle)
    obs = observation(result)
    assert component_value(obs, "113830") == 12.3
    assert component_value(obs, "113733") == 120
    assert obs["method"]["coding"][0]["code"] == "113866"
    assert obs["identifier"] == [{"system": HEADER_DOSE_SYSTEM,
                                  "value": f"urn:oid:{ds.SeriesInstanceUID}/acquisition/2"}]
    # another slice of the same acquisition maps to the same Observation
    other = f.image(f.CT_IMAGE, CTDIvol=12.3, AcquisitionNumber="2")
    other.SOPInstanceUID = f.uid("another-slice")
    assert observation(map_image_header_dose(other))["identifier"] == obs["identifier"]


def test_dx_dap_is_converted_from_dgy_cm2():
    result = map_image_header_dose(f.image(f.DX_IMAGE, ImageAndFluoroscopyAreaDoseProduct="0.41",
                                           ExposureIndex="51.7", TargetExposureIndex="438.5",
                                           DeviationIndex="-9.3"))
    check_bundle(result.bundle)
    obs = observation(result)
    assert component_value(obs, "122130") == pytest.approx(41)
    assert component_value(obs, "113845") == 51.7 and component_value(obs, "113847") == -9.3
    assert resources(result.bundle, "Device")[0]["type"]["coding"][0]["code"] == "DX"


def test_mammography_organ_dose_is_the_glandular_dose():
    result = map_image_header_dose(f.image(f.MG_IMAGE, OrganDose="0.0026", OrganExposed="BREAST",
                                           EntranceDoseInmGy="0.42", BodyPartThickness="43",
                                           ImageLaterality="L"))
    check_bundle(result.bundle)
    obs = observation(result)
    assert component_value(obs, "111631") == pytest.approx(0.26)
    assert component_value(obs, "111636") == 0.42
    assert component_value(obs, "111633") == 43
    assert obs["bodySite"]["coding"][0]["code"] == "80248007"
    assert not components(obs, "113518")


def test_irradiation_event_uid_is_the_key_when_present():
    ds = f.image(f.DX_IMAGE, ImageAndFluoroscopyAreaDoseProduct="1.0", IrradiationEventUID=f.uid("dx-evt"))
    result = map_image_header_dose(ds)
    assert observation(result)["identifier"][0]["value"] == f"urn:oid:{f.uid('dx-evt')}"
    assert result.event_uids == {f.uid("dx-evt")}


def test_integer_entrance_dose_in_dgy_is_used_only_when_non_zero():
    zero = f.image(f.MG_IMAGE, EntranceDose=0, OrganDose="0.001", OrganExposed="BREAST")
    assert not components(observation(map_image_header_dose(zero)), "111636")
    two = f.image(f.MG_IMAGE, EntranceDose=2)
    result = map_image_header_dose(two)
    assert component_value(observation(result), "111636") == 200
    assert any("integer in dGy" in w for w in result.warnings)


def test_image_without_dose_attributes():
    with pytest.raises(NoHeaderDoseError):
        map_image_header_dose(f.image(f.CT_IMAGE, KVP="120"))
