from __future__ import annotations

from pathlib import Path

import pytest

from devtools.stand_ins import build_linear_bundle


@pytest.fixture
def linear_bundle(tmp_path: Path) -> Path:
    return build_linear_bundle(tmp_path / "bundle", factor=0.5, threshold=1.0, stations=("EST-01",))
