"""The serving graph written from an autoencoder's weights, against Keras itself (needs TensorFlow)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from trainer.onnx_export import (
    DIRECT,
    KERAS_EXPORT,
    UnsupportedModelError,
    autoencoder_onnx,
    max_abs_diff_vs_keras,
    read_keras_autoencoder,
    serving_export,
)

pytestmark = pytest.mark.slow
STEPS, SENSORS = 12, 5


def with_nonzero_weights(model: Any) -> Any:
    """Keras starts biases at zero (forget gate at one): shift every weight so gate order matters."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([w + rng.normal(0.0, 0.2, w.shape).astype(np.float32) for w in weights])
    return model


def sample(n: int = 32) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, STEPS, SENSORS)).astype(np.float32)


def test_trainer_architecture_is_written_directly_and_matches_keras() -> None:
    from trainer.model import ModelConfig, build_autoencoder

    # Three encoder layers, noise and dropout: the layers the trainer can build.
    config = ModelConfig(encoder_units=(16, 12, 8), decoder_units=(8, 16), dropout=0.2, input_noise=0.5)
    model = with_nonzero_weights(build_autoencoder(STEPS, SENSORS, config))
    export = serving_export(model, sample())
    assert export.method == DIRECT
    assert export.fallback_reason is None
    assert export.max_abs_diff < 1e-5

    import onnx

    ops = [node.op_type for node in onnx.load_from_string(export.onnx).graph.node]
    assert ops.count("LSTM") == 5
    assert len(ops) < 20, ops


def test_dynamic_batch_and_one_window_give_the_same_reconstruction() -> None:
    import onnxruntime as ort

    from trainer.testing import keras_autoencoder

    model = with_nonzero_weights(keras_autoencoder(STEPS, SENSORS, (16, 8), seed=0))
    session = ort.InferenceSession(autoencoder_onnx(read_keras_autoencoder(model)))
    x = sample(7)
    (batched,) = session.run(None, {"windows": x})
    (single,) = session.run(None, {"windows": x[3:4]})
    np.testing.assert_allclose(single[0], batched[3], atol=1e-6)
    assert max_abs_diff_vs_keras(autoencoder_onnx(read_keras_autoencoder(model)), model, x) < 1e-5


def test_a_layer_it_does_not_know_falls_back_to_the_keras_export() -> None:
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(STEPS, SENSORS)),
            keras.layers.LSTM(8, activation="relu"),
            keras.layers.RepeatVector(STEPS),
            keras.layers.LSTM(8, return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(SENSORS)),
        ]
    )
    with pytest.raises(UnsupportedModelError, match="activation='relu'"):
        read_keras_autoencoder(model)
    export = serving_export(model, sample())
    assert export.method == KERAS_EXPORT
    assert export.fallback_reason is not None and "activation" in export.fallback_reason
    assert export.max_abs_diff < 1e-4


def test_a_model_without_a_bottleneck_is_refused() -> None:
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(STEPS, SENSORS)),
            keras.layers.LSTM(8, return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(SENSORS)),
        ]
    )
    with pytest.raises(UnsupportedModelError, match="RepeatVector"):
        read_keras_autoencoder(model)
