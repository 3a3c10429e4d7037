"""The shipped data files match their sources: the reference document, the source paper and PS3.16."""

from __future__ import annotations

import re

import pytest

from terminology.data import make_dicom_tables
from terminology.reference import DATA_DIR, load_reference

from .conftest import markdown_section, number, table_rows


def test_dicom_tables_match_their_generator() -> None:
    for name, text in make_dicom_tables.build().items():
        assert (DATA_DIR / name).read_text(encoding="utf-8") == text, f"{name} was edited by hand"


def test_every_data_file_is_listed_in_the_readme() -> None:
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for path in DATA_DIR.iterdir():
        if path.suffix in (".json", ".csv"):
            assert f"`{path.name}`" in readme, f"{path.name} missing from data/README.md"


def test_every_set_names_a_source_with_evidence() -> None:
    ref = load_reference()
    tables = [
        ref.tissue_weights,
        ref.radiation_weights,
        ref.k_factors,
        ref.drl_sets,
        ref.ct_dose_check,
        ref.fluoro_thresholds,
        ref.dose_limits,
        ref.ssde_fits,
        ref.typical_doses,
    ]
    for table in tables:
        for item in table.values():
            assert item.source.citation
            assert item.source.evidence in {"P", "S", "P-copy", "S-code"}, (item.id, item.source.evidence)


def test_no_unverified_evidence_is_shipped() -> None:
    for path in DATA_DIR.glob("*.json"):
        evidence = re.findall(r'"evidence":\s*"([^"]+)"', path.read_text(encoding="utf-8"))
        assert not [e for e in evidence if "UNVERIFIED" in e.upper()], path.name


def test_tissue_weights_reproduce_the_source_paper_table_ii(source_paper: str) -> None:
    """Table II of the paper lists the named tissues (it omits the remainder); ours must agree on each."""
    names = {
        "Gonads": "gonads",
        "Red bone marrow": "red_bone_marrow",
        "Lung": "lung",
        "Colon": "colon",
        "Stomach": "stomach",
        "Breast": "breast",
        "Bladder": "bladder",
        "Liver": "liver",
        "Esophagus": "oesophagus",
        "Thyroid": "thyroid",
        "Skin": "skin",
        "Bone surface": "bone_surface",
        "Brain": "brain",
        "Salivary glands": "salivary_glands",
    }
    block = source_paper[source_paper.index("Tissue or Organ\tICRP 60\tICRP 103") : source_paper.index("TABLE II.")]
    ref = load_reference()
    seen = 0
    for line in block.splitlines()[1:]:
        cells = [c.strip() for c in line.split("\t")]
        if not cells[0]:
            continue
        tissue = names[cells[0]]
        icrp60 = float(cells[1]) if len(cells) > 1 and cells[1] else None
        icrp103 = float(cells[2]) if len(cells) > 2 and cells[2] else None
        assert ref.tissue_weights["icrp103"].factors[tissue] == icrp103
        if icrp60 is None:  # brain and salivary glands: no own weight in ICRP 60
            assert tissue not in ref.tissue_weights["icrp60"].factors
        else:
            assert ref.tissue_weights["icrp60"].factors[tissue] == icrp60
        seen += 1
    assert seen == 14


def test_tissue_weights_match_the_reference_document(reference_doc: str) -> None:
    rows = table_rows(markdown_section(reference_doc, "B1. Tissue weighting factors"))
    ref = load_reference()
    checked = 0
    for label, w60, w103 in rows:
        tissue = label.strip("*").lower().replace(" ", "_").replace("sum", "")
        if not tissue:
            continue
        assert ref.tissue_weights["icrp103"].factors[tissue] == number(w103), tissue
        if number(w60) is not None and "remainder" not in w60:
            assert ref.tissue_weights["icrp60"].factors[tissue] == number(w60), tissue
        checked += 1
    assert checked == 15


AGES = ["0y", "1y", "5y", "10y", "adult"]


def test_aapm96_k_factors_match_the_reference_document(reference_doc: str) -> None:
    rows = table_rows(markdown_section(reference_doc, "B3a. AAPM Report 96"))
    regions = {
        "Head": "head",
        "Head & neck": "head_neck",
        "Neck": "neck",
        "Chest": "chest",
        "Abdomen & pelvis": "abdomen_pelvis",
        "Trunk": "trunk",
    }
    kset = load_reference().k_factors["aapm96-icrp60"]
    for row in rows:
        region = regions[row[0]]
        verified_all_ages = "UNVERIFIED" not in row[6]
        for age, cell in zip(AGES, row[1:6], strict=True):
            if verified_all_ages or age == "adult":
                assert kset.coefficients[region][age] == number(cell), (region, age)
            else:
                assert age not in kset.coefficients[region], f"unverified {region} {age} must not ship"


def test_nci_k_factors_match_the_reference_document(reference_doc: str) -> None:
    rows = table_rows(markdown_section(reference_doc, "B3c. NCI"))
    regions = {
        "Head": "head",
        "Chest": "chest",
        "Abdomen/pelvis": "abdomen_pelvis",
        "Chest-abdomen-pelvis": "chest_abdomen_pelvis",
    }
    ref = load_reference()
    assert len(rows) == 7
    for row in rows:
        name, basis = row[0].rsplit(" ", 1)
        kset = ref.k_factors[f"nci-lee2012-{'icrp103' if basis == 'ED103' else 'icrp60'}-120kvp"]
        for age, cell in zip(["0y", "1y", "5y", "10y", "15y", "adult"], row[2:8], strict=True):
            assert kset.coefficients[regions[name]][age] == number(cell), (name, basis, age)


def test_icrp103_adult_k_factors_match_the_reference_document(reference_doc: str) -> None:
    rows = table_rows(markdown_section(reference_doc, "B3b. ICRP 103 based"))
    kset = load_reference().k_factors["icrp103-adult-radclass"]
    assert {r[0].lower(): number(r[1]) for r in rows} == {k: v["adult"] for k, v in kset.coefficients.items()}


def test_uk_drls_match_the_reference_document(reference_doc: str) -> None:
    rows = table_rows(markdown_section(reference_doc, "B4a. UK national DRLs"))
    dset = load_reference().drl_sets["gb-ndrl-2022-adult-ct"]
    shipped = {(e.label, e.quantity): e.value for e in dset.entries}
    labels = {e.label for e in dset.entries}
    assert len(rows) == 13 == len(labels)
    doc_values = sorted(v for r in rows for v in (number(r[1]), number(r[2])) if v is not None)
    assert doc_values == sorted(shipped.values())


def test_moroccan_drls_match_the_reference_document(reference_doc: str) -> None:
    section = markdown_section(reference_doc, "B4b. Morocco")
    rows = {r[0].split(",")[0].strip("*"): r for r in table_rows(section)}
    ref = load_reference()
    for row_key, set_id, exams in [
        ("El Mansouri M", "ma-el-mansouri-2022-adult-ct", ["CT-HEAD", "CT-CHEST", "CT-ABDOMEN"]),
        ("Bouzekraoui et al.", "ma-bouzekraoui-adult-ct", ["CT-HEAD", "CT-CHEST", "CT-ABDOMEN-PELVIS"]),
    ]:
        row = next(r for k, r in rows.items() if k.startswith(row_key))
        entries = {(e.exam, e.quantity): e.value for e in ref.drl_sets[set_id].entries}
        for exam, cell in zip(exams, row[2:5], strict=True):
            ctdi, dlp = (float(x) for x in re.findall(r"\d+(?:\.\d+)?", cell.replace("**", ""))[:2])
            assert entries[(exam, "CTDIvol")] == ctdi and entries[(exam, "DLP")] == dlp, (set_id, exam)


def test_iaea_guidance_levels_match_the_reference_document(reference_doc: str) -> None:
    rows = table_rows(markdown_section(reference_doc, "B4c. IAEA guidance levels"))
    exams = {
        "Lumbar spine AP / LAT / LSJ": ["DX-LSPINE-AP", "DX-LSPINE-LAT", "DX-LSJ-LAT"],
        "Abdomen, IVU, cholecystography AP": ["DX-ABDOMEN-AP"],
        "Pelvis AP": ["DX-PELVIS-AP"],
        "Hip joint AP": ["DX-HIP-AP"],
        "Chest PA / LAT": ["DX-CHEST-PA", "DX-CHEST-LAT"],
        "Thoracic spine AP / LAT": ["DX-TSPINE-AP", "DX-TSPINE-LAT"],
        "Dental periapical / AP": ["DX-DENTAL-PERIAPICAL", "DX-DENTAL-AP"],
        "Skull PA / LAT": ["DX-SKULL-PA", "DX-SKULL-LAT"],
    }
    entries = {e.exam: e.value for e in load_reference().drl_sets["iaea-bss115-1996-radiography"].entries}
    for label, cell in rows:
        values = [float(v) for v in re.findall(r"\d+(?:\.\d+)?", cell)]
        assert [entries[e] for e in exams[label]] == values, label
    assert len(entries) == sum(len(v) for v in exams.values())


def test_ssde_table_matches_the_reference_document(reference_doc: str) -> None:
    rows = table_rows(markdown_section(reference_doc, "B8. SSDE"))
    shipped = [tuple(r) for r in (load_reference_ssde_rows())]
    assert [(number(a), number(b), number(c)) for a, b, c in rows] == shipped


def load_reference_ssde_rows() -> list[tuple[float, float, float]]:
    import json

    doc = json.loads((DATA_DIR / "ssde.json").read_text(encoding="utf-8"))
    return [tuple(float(x) for x in row) for row in doc["reference_table"]["rows"]]  # type: ignore[misc]


def test_body_regions_cover_cid_4030_and_4031() -> None:
    from pydicom.sr._cid_dict import cid_concepts
    from pydicom.sr._concepts_dict import concepts

    ref = load_reference()
    sct = ref.code_systems["http://snomed.info/sct"].concepts
    names = set(cid_concepts[4030]["SCT"]) | set(cid_concepts[4031]["SCT"])
    cid_codes = {code for name in names for code in concepts["SCT"][name]}
    assert cid_codes <= set(ref.snomed_region_index)
    assert set(ref.snomed_region_index) <= set(sct)


@pytest.mark.parametrize(
    ("srt", "sct"),
    [
        ("P5-08000", "77477000"),
        ("P5-40010", "71651007"),
        ("P5-06000", "44491008"),
        ("P5-08001", "116152004"),
        ("G-C0E8", "363703001"),
        ("R-408C3", "261004008"),
        ("R-0038D", "373066001"),
        ("R-00339", "373067005"),
        ("G-C32C", "408730004"),
        ("F-61FDB", "349358000"),
        ("C-10072", "89457008"),
        ("G-C340", "410675002"),
        ("A-2C090", "15869005"),
        ("T-04020", "73056007"),
        ("T-04030", "80248007"),
        ("T-04080", "63762007"),
    ],
)
def test_legacy_map_has_the_pairs_seen_in_rdsr_files(srt: str, sct: str) -> None:
    """The pairs docs/reference/rdsr-to-fhir.md §2.6 confirmed in vendor files and PixelMed."""
    assert load_reference().legacy_srt_to_sct[srt] == sct


def test_unit_list_kinds_are_right() -> None:
    from terminology.ucum import kind_of

    for entry in load_reference().units.values():
        if entry.code != "{pulse}/s":
            assert kind_of(entry.code).value == entry.kind, entry.code
