"""Loaders: caching, site overrides merged over the shipped sets, and clear errors for bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from terminology.drl import compare_with_drl
from terminology.errors import ReferenceDataError
from terminology.reference import load_reference

LOCAL_DRL = {
    "kind": "drl-sets",
    "version": "test",
    "sets": [
        {
            "id": "site-local-ct",
            "title": "Test hospital local CT DRLs",
            "kind": "local",
            "country": "MA",
            "population": "adult",
            "year": 2026,
            "status": "active",
            "source": {"citation": "Test hospital audit", "evidence": "local"},
            "entries": [
                {
                    "exam": "CT-CHEST",
                    "label": "Chest",
                    "modality": "CT",
                    "quantity": "DLP",
                    "value": 400,
                    "unit": "mGy.cm",
                    "per": "examination",
                }
            ],
        }
    ],
}


def write(directory: Path, name: str, doc: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_shipped_data_is_cached() -> None:
    assert load_reference() is load_reference()
    assert load_reference(None) is load_reference("/nonexistent/site/dir")


def test_site_set_is_added_and_policy_puts_it_first(tmp_path: Path) -> None:
    write(tmp_path, "drl.json", LOCAL_DRL)
    write(
        tmp_path,
        "policy.json",
        {"kind": "evaluation-policy", "policy": {"drl_set_priority": ["site-local-ct", "gb-ndrl-2022-adult-ct"]}},
    )
    ref = load_reference(tmp_path)
    assert "site-local-ct" in ref.drl_sets and "gb-ndrl-2022-adult-ct" in ref.drl_sets
    assert ref.drl_sets["site-local-ct"].source.origin == "site"
    result = compare_with_drl((450, "mGy.cm"), "CT-CHEST", "DLP", age_years=50, reference=ref)
    assert [c.drl_set for c in result.comparisons] == ["site-local-ct", "gb-ndrl-2022-adult-ct"]
    assert result.primary is not None and result.primary.exceeded and result.primary.drl.value == 400
    # keys the site did not set keep their shipped values
    assert ref.policy.adult_min_age_years == load_reference().policy.adult_min_age_years


def test_site_set_with_a_shipped_id_replaces_it(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(LOCAL_DRL))
    doc["sets"][0]["id"] = "ma-el-mansouri-2022-adult-ct"
    write(tmp_path, "drl.json", doc)
    ref = load_reference(tmp_path)
    entries = ref.drl_sets["ma-el-mansouri-2022-adult-ct"].entries
    assert [(e.exam, e.value) for e in entries] == [("CT-CHEST", 400)]


def test_site_can_remove_a_set(tmp_path: Path) -> None:
    write(tmp_path, "remove.json", {"kind": "fluoro-thresholds", "sets": [{"id": "tjc-sentinel-2005", "remove": True}]})
    ref = load_reference(tmp_path)
    assert "tjc-sentinel-2005" not in ref.fluoro_thresholds
    assert "ncrp168-srdl" in ref.fluoro_thresholds


def test_edits_to_site_files_are_picked_up(tmp_path: Path) -> None:
    path = write(tmp_path, "drl.json", LOCAL_DRL)
    first = load_reference(tmp_path)
    assert load_reference(tmp_path) is first
    doc = json.loads(json.dumps(LOCAL_DRL))
    doc["sets"][0]["entries"][0]["value"] = 425
    path.write_text(json.dumps(doc), encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = load_reference(tmp_path)
    assert second is not first
    assert second.drl_sets["site-local-ct"].entries[0].value == 425


def test_site_protocol_rules_take_precedence(tmp_path: Path) -> None:
    from terminology.codes import Coding
    from terminology.protocols import ExamDescriptor, standardise_exam

    write(
        tmp_path,
        "map.json",
        {
            "kind": "protocol-map",
            "code_rules": [{"system": "urn:ris:local", "code": "TDM-TAP", "standard_procedure": "CT-CAP"}],
            "region_keywords": {"head": ["SCANOPELVI*"]},
        },
    )
    ref = load_reference(tmp_path)
    exam = ExamDescriptor("CT", "Thorax", procedure_codes=(Coding("urn:ris:local", "TDM-TAP"),))
    assert standardise_exam(exam, ref).code == "CT-CAP"
    assert standardise_exam(exam, load_reference()).code == "CT-CHEST"
    assert ref.protocol_map.region_keywords["head"][0] == "SCANOPELVI*"


BAD_FILES = [
    ("not json", "{", "cannot read"),
    ("no kind", {"sets": []}, "must be a JSON object with a 'kind'"),
    ("unknown kind", {"kind": "nonsense", "sets": []}, "unknown kind 'nonsense'"),
    (
        "shipped-only kind",
        {"kind": "code-system-fragment", "id": "x", "system": "s", "title": "t", "concepts": []},
        "cannot be overridden",
    ),
    (
        "DLP in mGy",
        {
            "kind": "drl-sets",
            "sets": [
                {
                    **LOCAL_DRL["sets"][0],
                    "entries": [{"exam": "CT-CHEST", "modality": "CT", "quantity": "DLP", "value": 400, "unit": "mGy"}],
                }
            ],
        },
        "not a dose-length-product unit",
    ),
    (
        "vendor unit",
        {
            "kind": "drl-sets",
            "sets": [
                {
                    **LOCAL_DRL["sets"][0],
                    "entries": [
                        {"exam": "CT-CHEST", "modality": "CT", "quantity": "DLP", "value": 400, "unit": "mGycm"}
                    ],
                }
            ],
        },
        "invalid UCUM",
    ),
    (
        "negative value",
        {
            "kind": "drl-sets",
            "sets": [
                {
                    **LOCAL_DRL["sets"][0],
                    "entries": [
                        {"exam": "CT-CHEST", "modality": "CT", "quantity": "DLP", "value": -1, "unit": "mGy.cm"}
                    ],
                }
            ],
        },
        "must be positive",
    ),
    (
        "unknown exam",
        {
            "kind": "drl-sets",
            "sets": [
                {
                    **LOCAL_DRL["sets"][0],
                    "entries": [
                        {"exam": "CT-BRAINZ", "modality": "CT", "quantity": "DLP", "value": 1, "unit": "mGy.cm"}
                    ],
                }
            ],
        },
        "unknown standard procedure 'CT-BRAINZ'",
    ),
    (
        "no source",
        {"kind": "drl-sets", "sets": [{k: v for k, v in LOCAL_DRL["sets"][0].items() if k != "source"}]},
        "needs a 'source'",
    ),
    (
        "weights not summing to 1",
        {
            "kind": "tissue-weighting-factors",
            "sets": [{"id": "icrp103", "title": "t", "source": {"citation": "c"}, "factors": {"lung": 0.5}}],
        },
        "sum to 0.5",
    ),
    (
        "policy names unknown set",
        {"kind": "evaluation-policy", "policy": {"drl_set_priority": ["nope"]}},
        "unknown DRL set 'nope'",
    ),
    (
        "k set under wrong ICRP",
        {"kind": "evaluation-policy", "policy": {"k_factor_sets": {"icrp103": ["aapm96-icrp60"]}}},
        "is icrp60, listed for icrp103",
    ),
    ("bad missing_age", {"kind": "evaluation-policy", "policy": {"missing_age": "guess"}}, "missing_age"),
    (
        "k band undefined",
        {
            "kind": "ct-k-factors",
            "sets": [
                {
                    "id": "x",
                    "title": "t",
                    "icrp": "icrp103",
                    "unit": "mSv/(mGy.cm)",
                    "source": {"citation": "c"},
                    "age_bands": [{"label": "adult", "min_years": 18}],
                    "coefficients": {"head": {"child": 0.01}},
                }
            ],
        },
        "undefined age bands",
    ),
    (
        "region code in two regions",
        {"kind": "body-regions", "regions": [{"id": "thorax2", "display": "T", "members": ["816094009"]}]},
        "is in both",
    ),
]


@pytest.mark.parametrize(("case", "content", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_site_files_raise_clear_errors(tmp_path: Path, case: str, content: Any, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(ReferenceDataError, match=message):
        load_reference(tmp_path)
