"""Shared fixtures. Qt runs offscreen; real data is found at ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when the data is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dicom_99(shared_data: Path) -> Path:
    path = shared_data / "dicom" / "chest_ct_99"
    if not path.is_dir():
        pytest.skip("chest_ct_99 is not available")
    return path
