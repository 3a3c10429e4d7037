"""Shared test fixtures.

Real vendor samples live in ``../shared/samples`` (some are GPL-licensed, so they are read in place,
never copied here); tests that need them skip cleanly when the folder is absent. Set
``DACS_SAMPLES`` to point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("DACS_SAMPLES", REPO.parent / "shared" / "samples"))


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The shared sample folder (``rdsr/``, ``hl7/``); skips the test when it is not there."""
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES}")
    return SAMPLES
