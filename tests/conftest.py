"""Fixtures shared by all tests."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository (real reference data); skips the test when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found: the real reference data is expected at {SHARED}")
    return SHARED
