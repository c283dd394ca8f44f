from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.suites.skab_data import default_skab_dir


@pytest.fixture(scope="session")
def skab_root() -> Path:
    """The SKAB data set, read in place; tests that need it skip where it is not installed."""
    root = default_skab_dir()
    if not (root / "valve1").is_dir():
        pytest.skip(f"SKAB data not found at {root} (set CENTINELA_SKAB_DIR)")
    return root
