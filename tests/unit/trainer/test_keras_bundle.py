"""A bundle of the trainer's own autoencoder serves what Keras computes (needs TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.scoring import reconstruction_errors
from trainer.testing import build_keras_bundle


@pytest.mark.slow
def test_onnx_export_matches_keras_within_1e_4(tmp_path: Path) -> None:
    import keras

    from detector.bundle import load_bundle

    keras_bundle = build_keras_bundle(tmp_path / "bundle", units=(16, 8), seed=0)
    bundle = load_bundle(keras_bundle)
    model = keras.saving.load_model(keras_bundle / "model.keras", compile=False)
    rng = np.random.default_rng(3)
    raw = np.asarray(rng.normal(loc=[499.2, 69.8, 1800.5, 15.0, 400.1], scale=[20, 4, 30, 2, 10],
                                size=(64, 30, 5)), dtype=np.float32)  # fmt: skip
    scaled = bundle.scalers.transform_windows(["X"] * 64, raw)
    keras_out = model.predict(scaled, verbose=0)
    onnx_out = bundle.reconstructor.reconstruct(scaled)
    np.testing.assert_allclose(onnx_out, keras_out, atol=1e-4)
    keras_scores, _ = reconstruction_errors(scaled, keras_out, "mean")
    served = bundle.score(["X"] * 64, raw)
    np.testing.assert_allclose(served.scores, keras_scores, rtol=1e-4, atol=1e-6)
