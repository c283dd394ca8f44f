"""Real (random-weight) LSTM autoencoders and their bundles for tests and benchmarks, without training.

The model is the trainer's own (``trainer.model.build_autoencoder``) and the ONNX file its own serving
export (``trainer.onnx_export.serving_export``), so what these bundles serve is what a trained bundle
serves, only with other weights. Needs TensorFlow (imported inside); several seconds. The onnx-only
stand-ins (``build_linear_bundle``) stay in ``detector.testing``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.bundle import write_bundle
from detector.readings import DEFAULT_LIMITS, DEFAULT_SENSORS
from detector.testing import FIXED_CREATED_AT, default_scalers
from detector.windows import WindowSpec
from trainer.model import ModelConfig, build_autoencoder
from trainer.onnx_export import serving_export


def keras_autoencoder(steps: int, sensors: int, units: tuple[int, int] = (128, 64), seed: int = 0) -> Any:
    """The trainer's autoencoder (encoder ``units``, decoder the same reversed; the trainer's dropout
    and input noise, inactive at inference) with random weights drawn from ``seed``."""
    import keras

    keras.utils.set_random_seed(seed)
    config = ModelConfig(encoder_units=tuple(units), decoder_units=tuple(reversed(units)))
    return build_autoencoder(steps, sensors, config)


def export_onnx(model: Any, steps: int, sensors: int) -> bytes:
    """The serving export the trainer ships (``serving_export``), checked on 64 random scaled windows
    (seed 0)."""
    sample = np.random.default_rng(0).standard_normal((64, steps, sensors)).astype(np.float32)
    return serving_export(model, sample).onnx


def build_keras_bundle(
    out_dir: Path | str,
    *,
    units: tuple[int, int] = (16, 8),
    seed: int = 0,
    threshold: float = 1.0,
    sensors: Sequence[str] = DEFAULT_SENSORS,
    window: WindowSpec | None = None,
    stations: Sequence[str] = (),
    model_version: str = "test-keras-1",
    aggregation: str = "mean",
) -> Path:
    """A bundle with a small random-weight autoencoder and its ONNX export (needs TensorFlow)."""
    spec = window or WindowSpec()
    steps, n_sensors = spec.samples_per_window, len(sensors)
    model = keras_autoencoder(steps, n_sensors, units, seed)
    onnx_bytes = export_onnx(model, steps, n_sensors)
    with tempfile.TemporaryDirectory() as folder:
        keras_path = Path(folder) / "model.keras"
        model.save(keras_path)
        return write_bundle(
            out_dir,
            onnx_model=onnx_bytes,
            keras_model_file=keras_path,
            model_version=model_version,
            sensors=sensors,
            window=spec,
            scalers=default_scalers(n_sensors, stations),
            aggregation=aggregation,
            threshold=threshold,
            calibration={"method": "fixed", "note": "test bundle, not calibrated"},
            training={"note": f"random weights, seed {seed}"},
            limits={name: DEFAULT_LIMITS[name] for name in sensors if name in DEFAULT_LIMITS},
            created_at=FIXED_CREATED_AT,
        )
