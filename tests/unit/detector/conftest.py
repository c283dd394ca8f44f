from __future__ import annotations

from pathlib import Path

import pytest

from detector.testing import build_keras_bundle, build_linear_bundle


@pytest.fixture
def linear_bundle(tmp_path: Path) -> Path:
    return build_linear_bundle(tmp_path / "bundle", factor=0.5, threshold=1.0, stations=("EST-01",))


@pytest.fixture(scope="session")
def keras_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (random-weight) LSTM autoencoder bundle: TensorFlow import and export, several seconds."""
    return build_keras_bundle(tmp_path_factory.mktemp("keras") / "bundle", units=(16, 8), seed=0)
