"""Shared fixtures. Real-data tests read ../shared/data through PLATEFLOW_REAL_DATA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real microscopy data (../shared/data); skips where it is not configured."""
    value = os.environ.get("PLATEFLOW_REAL_DATA")
    if not value:
        pytest.skip("PLATEFLOW_REAL_DATA is not set: real-data tests need ../shared/data")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"PLATEFLOW_REAL_DATA={value} is not a folder")
    return path
