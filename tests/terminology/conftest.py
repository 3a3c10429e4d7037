"""Fixtures for the terminology tests: the reference document and source paper, read in place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
REFERENCE_DOC = SHARED / "docs" / "reference" / "dose-reference-data.md"
SOURCE_PAPER = SHARED / "seeds" / "dacs-morocco-paper.txt"


@pytest.fixture(scope="session")
def reference_doc() -> str:
    """Text of docs/reference/dose-reference-data.md; skips when the shared folder is absent."""
    if not REFERENCE_DOC.is_file():
        pytest.skip(f"reference document not found at {REFERENCE_DOC}")
    return REFERENCE_DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def source_paper() -> str:
    """Text of the source paper (seeds/dacs-morocco-paper.txt); skips when absent."""
    if not SOURCE_PAPER.is_file():
        pytest.skip(f"source paper not found at {SOURCE_PAPER}")
    return SOURCE_PAPER.read_text(encoding="utf-8")


def markdown_section(text: str, heading: str) -> str:
    """The text from a markdown heading (matched by prefix) to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(heading)}.*?$(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, f"section {heading!r} not found"
    return match.group(1)


def table_rows(section: str) -> list[list[str]]:
    """Cells of each markdown table body row in ``section`` (header and separator rows dropped)."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.strip().startswith("|")
    ]
    return [r for r in rows[2:] if not set("".join(r)) <= set("-: ")] if len(rows) > 2 else []


def number(cell: str) -> float | None:
    """The first number in a cell, ignoring markdown emphasis; None for a dash or empty cell."""
    m = re.search(r"-?\d+(?:\.\d+)?", cell.replace("**", ""))
    return float(m.group(0)) if m else None
