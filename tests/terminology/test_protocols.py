"""Protocol standardisation: descriptions, procedure codes and RDSR target regions → standard procedure."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminology.codes import SCT, Coding
from terminology.protocols import (
    MAPPED,
    UNMAPPED,
    ExamDescriptor,
    normalise_text,
    standardise_exam,
    target_regions_to_body_regions,
    unmapped,
)
from terminology.reference import load_reference


def test_normalise_text() -> None:
    assert normalise_text("Scanner crâne^C- (Adult)") == ("SCANNER", "CRANE", "C", "ADULT")
    assert normalise_text("  ") == ()


@pytest.mark.parametrize(
    ("modality", "description", "code", "matched_by"),
    [
        # descriptions met in the vendor sample files
        ("CT", "Thorax^TAP (Adult)", "CT-CAP", "description-regions"),
        ("CT", "Thorax^Thorax_NON_CON (Adult)", "CT-CHEST", "description-regions"),
        ("CT", "CT Chest With Contrast", "CT-CHEST", "description-regions"),
        ("CT", "PET/CT Ganzkoerper FDG", "CT-WHOLE-BODY", "description-regions"),
        ("CT", "FACIAL BONES", "CT-HEAD", "description-regions"),
        ("CT", "Colonography", "CT-COLONOGRAPHY", "procedure-keyword"),
        ("CT", "Specials^PhysicsTesting (Adult)", "CT-QA", "description-regions"),
        ("CR", "CR THORAX", "DX-CHEST", "description-regions"),
        ("DX", "CR LEG", "DX-LOWER-LIMB", "description-regions"),
        ("MG", "XR Breast tomosynthesis Both", "MG-TOMOSYNTHESIS", "procedure-keyword"),
        ("MG", "Pacchetto senologico con tomosintesi", "MG-TOMOSYNTHESIS", "procedure-keyword"),
        ("MG", "Bilateral Mammography", "MG-MAMMOGRAPHY", "description-regions"),
        ("RF", "DL OK THORAX", "RF-FLUOROSCOPY", "modality-default"),
        # French descriptions of Moroccan departments
        ("CT", "TDM ABDOMINO-PELVIENNE", "CT-ABDOMEN-PELVIS", "description-regions"),
        ("CT", "Scanner cérébral sans injection", "CT-HEAD", "description-regions"),
        ("CT", "TDM thoraco-abdomino-pelvienne", "CT-CAP", "description-regions"),
        ("CT", "Angioscanner pulmonaire", "CT-CTPA", "procedure-keyword"),
        ("CT", "Uroscanner", "CT-UROGRAM", "procedure-keyword"),
        ("CT", "TDM des sinus", "CT-SINUS", "procedure-keyword"),
        ("CT", "Rachis lombaire", "CT-LSPINE", "description-regions"),
        ("CT", "Rachis cervical", "CT-CSPINE", "description-regions"),
        ("CT", "Thoracic spine", "CT-TSPINE", "description-regions"),
        ("DX", "Radio thorax PA", "DX-CHEST-PA", "description-regions"),
        ("DX", "Rachis lombaire profil", "DX-LSPINE-LAT", "description-regions"),
        ("DX", "Thorax face et profil", "DX-CHEST", "description-regions"),
        ("DX", "Bassin de face", "DX-PELVIS", "description-regions"),
        ("DX", "Hanche droite", "DX-HIP", "procedure-keyword"),
    ],
)
def test_descriptions(modality: str, description: str, code: str, matched_by: str) -> None:
    m = standardise_exam(ExamDescriptor(modality, description))
    assert (m.status, m.code, m.matched_by) == (MAPPED, code, matched_by), m


def test_longer_phrases_win_over_prefixes() -> None:
    m = standardise_exam(ExamDescriptor("CT", "Thoracic spine"))
    assert m.description_regions == ("thoracic_spine",)


def test_keywords_do_not_span_two_texts() -> None:
    m = standardise_exam(ExamDescriptor("CT", "Lumbar", descriptions=("spine follow-up",)))
    assert m.description_regions[0] == "lumbar_spine"
    m = standardise_exam(ExamDescriptor("CT", "Pulmonary", descriptions=("angio of legs",)))
    assert m.code != "CT-CTPA"


def test_legacy_target_regions_combine_into_one_exam() -> None:
    targets = tuple(Coding.from_dicom(c, "SRT") for c in ("T-D3000", "T-D4000", "T-D6000"))
    m = standardise_exam(ExamDescriptor("CT", None, target_regions=targets))
    assert (m.code, m.matched_by, m.target_regions) == ("CT-CAP", "target-regions", ("chest", "abdomen", "pelvis"))


def test_current_snomed_target_region() -> None:
    m = standardise_exam(ExamDescriptor("CT", "", target_regions=(Coding(SCT, "69536005"),)))
    assert m.code == "CT-HEAD" and m.body_region is not None and m.body_region.k_region == "head"


def test_sub_region_is_absorbed() -> None:
    targets = (Coding(SCT, "816094009"), Coding(SCT, "80891009"))  # chest + heart
    assert standardise_exam(ExamDescriptor("CT", None, target_regions=targets)).code == "CT-CHEST"


def test_description_wins_over_target_regions_and_the_conflict_is_kept() -> None:
    m = standardise_exam(ExamDescriptor("CT", "CT head", target_regions=(Coding.from_dicom("T-D3000", "SRT"),)))
    assert m.code == "CT-HEAD" and m.conflicts and "CT-CHEST" in m.conflicts[0]


def test_unrecognised_target_regions_are_reported() -> None:
    targets = (
        Coding.from_dicom("00001", "99GEMS", "Unknown"),
        Coding.from_dicom("T-D0001", "SRT"),
        Coding.from_dicom("T-D3000", "SRT"),
    )
    regions, unknown = target_regions_to_body_regions(targets)
    assert regions == ("chest",) and [c.code for c in unknown] == ["00001", "T-D0001"]


def test_unmapped_exams_say_why() -> None:
    m = standardise_exam(ExamDescriptor("CT", "TDM thoracique + crâne"))
    assert m.status == UNMAPPED and m.code is None
    assert "chest+head" in (m.reason or "")
    m = standardise_exam(ExamDescriptor("CT", "Protocole 7"))
    assert m.status == UNMAPPED and "no recognised" in (m.reason or "")
    m = standardise_exam(ExamDescriptor(None, "CT head"))
    assert m.status == UNMAPPED and m.reason == "modality unknown"


def test_unmapped_work_list() -> None:
    results = [(str(i), standardise_exam(ExamDescriptor("CT", d))) for i, d in enumerate(["CT head", "zzz", "Thorax"])]
    assert [exam_id for exam_id, _ in unmapped(results)] == ["1"]


def test_fluoroscopy_keeps_the_described_region() -> None:
    m = standardise_exam(ExamDescriptor("XA", "Huvud"))
    assert m.code == "XA-INTERVENTIONAL" and m.body_region is not None and m.body_region.id == "head"


def test_every_shipped_combination_maps_to_a_procedure_of_its_modality() -> None:
    ref = load_reference()
    for combo in ref.protocol_map.region_combinations:
        assert ref.standard_procedures[combo.standard_procedure].modality == combo.modality


def test_target_regions_of_the_vendor_samples(samples_dir: Path) -> None:
    """Every Target Region (123014) in the sample RDSRs either maps to a body region or is one of the
    codes no dictionary can map (private scheme, empty, 'topography unknown', a truncated code)."""
    import pydicom

    def walk(items, out):  # type: ignore[no-untyped-def]
        for item in items:
            name = item.get("ConceptNameCodeSequence")
            if name and name[0].get("CodeValue") == "123014" and item.get("ConceptCodeSequence"):
                c = item.ConceptCodeSequence[0]
                out.add(Coding.from_dicom(str(c.get("CodeValue", "")), str(c.get("CodingSchemeDesignator", ""))))
            if item.get("ContentSequence"):
                walk(item.ContentSequence, out)

    codings: set[Coding] = set()
    for path in sorted((samples_dir / "rdsr").glob("*.dcm")):
        if path.stat().st_size > 400_000:  # the long XA event lists add time, not new region codes
            continue
        walk(pydicom.dcmread(path).get("ContentSequence", []), codings)
    assert len(codings) > 10
    regions, unknown = target_regions_to_body_regions(sorted(codings, key=lambda c: c.key()))
    assert {"chest", "abdomen", "head", "entire_body", "breast", "heart"} <= set(regions)
    ref = load_reference()
    for c in unknown:
        mappable = c.code in ref.legacy_srt_to_sct and ref.legacy_srt_to_sct[c.code] in ref.snomed_region_index
        assert not mappable, c
        assert c.system.startswith("urn:dicom:scheme:") or not c.code or c.code not in ref.legacy_srt_to_sct
