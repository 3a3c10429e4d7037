"""Codings from DICOM triplets and legacy SRT → SNOMED CT normalisation."""

from __future__ import annotations

import pytest

from terminology.codes import DCM, SCT, SRT, Coding, normalise_coding, same_concept, snomed_from_legacy


@pytest.mark.parametrize(
    ("scheme", "system"),
    [
        ("DCM", DCM),
        ("SCT", SCT),
        ("SRT", SRT),
        ("SNM3", SRT),
        ("99GEMS", "urn:dicom:scheme:99GEMS"),
        ("", "urn:dicom:scheme:unknown"),
    ],
)
def test_from_dicom_scheme(scheme: str, system: str) -> None:
    assert Coding.from_dicom("X", scheme).system == system


def test_normalise_legacy_code_uses_dacs_display_not_the_vendors() -> None:
    c = normalise_coding(Coding.from_dicom("P5-08000", "SRT", "COMPUTED TOMOGRAPHY X-RAY (vendor spelling)"))
    assert (c.system, c.code) == (SCT, "77477000")
    assert c.display != "COMPUTED TOMOGRAPHY X-RAY (vendor spelling)"


def test_snm3_is_treated_like_srt() -> None:
    """Carestream sends Hip joint as (T-15710, SNM3)."""
    assert normalise_coding(Coding.from_dicom("T-15710", "SNM3")).code == "24136001"


def test_non_legacy_and_unmapped_codes_are_unchanged() -> None:
    dcm = Coding(DCM, "113813")
    assert normalise_coding(dcm) is dcm
    unknown = Coding.from_dicom("T-D0001", "SRT")
    assert normalise_coding(unknown) is unknown
    assert snomed_from_legacy("T-D0001") is None


def test_same_concept_across_schemes() -> None:
    assert same_concept(Coding.from_dicom("R-0038D", "SRT"), Coding(SCT, "373066001"))
    assert not same_concept(Coding.from_dicom("R-0038D", "SRT"), Coding(SCT, "373067005"))


def test_coding_to_fhir() -> None:
    assert Coding(SCT, "1", "x").to_fhir() == {"system": SCT, "code": "1", "display": "x"}
    assert Coding.from_dicom("", "SRT", "Other").to_fhir() == {"system": SRT, "display": "Other"}
    with pytest.raises(ValueError):
        Coding("", "1")
