"""The serving graph of an LSTM autoencoder, written directly from its weights.

Keras' ``model.export(format="onnx")`` (tf2onnx) gives a correct graph, but around its 4 LSTM ops it
keeps what TensorFlow traced: a transpose pair between every two LSTMs, shape arithmetic for zero
initial states, and the per-step Dense unrolled into 30 Slice/Squeeze/MatMul/Unsqueeze groups and a
Concat, about 150 small nodes that ONNX Runtime runs one by one. This module writes the same function
as a dozen nodes: one Transpose in, the LSTM ops back to back in time-major layout, an Expand for the
RepeatVector, one MatMul and Add for the Dense, one Transpose out (3 % less kernel time in ONNX
Runtime's profile; whole-batch rates are the same within noise).

The layers are read by their class name and weights, so this module needs neither Keras nor
TensorFlow. Anything it does not know (another layer type, a non-default activation) raises
``UnsupportedModelError``; callers then fall back to Keras' own export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.errors import BundleError

FloatArray = npt.NDArray[np.float32]
INPUT_NAME = "windows"
OUTPUT_NAME = "reconstruction"
# Layers that do nothing at inference time.
_INFERENCE_NO_OPS = frozenset(
    {"InputLayer", "Dropout", "GaussianNoise", "GaussianDropout", "SpatialDropout1D"}
)


class UnsupportedModelError(ValueError):
    """The model has a layer or setting the direct graph does not reproduce."""


@dataclass(frozen=True)
class LstmWeights:
    """One LSTM layer in Keras' layout: kernel ``(in, 4H)``, recurrent ``(H, 4H)``, bias ``(4H,)``,
    gates in Keras' order i, f, c, o."""

    kernel: FloatArray
    recurrent_kernel: FloatArray
    bias: FloatArray
    return_sequences: bool

    @property
    def units(self) -> int:
        return int(self.recurrent_kernel.shape[0])


@dataclass(frozen=True)
class AutoencoderWeights:
    """Encoder LSTMs, a RepeatVector of ``steps``, decoder LSTMs, a per-step Dense."""

    steps: int
    sensors: int
    encoder: Sequence[LstmWeights]
    decoder: Sequence[LstmWeights]
    dense_kernel: FloatArray
    dense_bias: FloatArray


def _onnx_gates(matrix: npt.NDArray[Any], units: int) -> FloatArray:
    """Keras' gate blocks i, f, c, o (last axis) as ONNX's i, o, f, c."""
    i, f, c, o = (matrix[..., k * units : (k + 1) * units] for k in range(4))
    return np.concatenate([i, o, f, c], axis=-1).astype(np.float32)


def _check_lstm(layer: Any) -> None:
    config = layer.get_config()
    expected = {
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "use_bias": True,
        "go_backwards": False,
        "stateful": False,
        "return_state": False,
    }
    for key, value in expected.items():
        if key in config and config[key] != value:
            raise UnsupportedModelError(
                f"LSTM layer {layer.name!r} has {key}={config[key]!r}, expected {value!r}"
            )


def read_keras_autoencoder(model: Any) -> AutoencoderWeights:
    """The weights of a Keras model shaped like ``trainer.model.build_autoencoder``'s."""
    encoder: list[LstmWeights] = []
    decoder: list[LstmWeights] = []
    repeat: int | None = None
    dense: tuple[FloatArray, FloatArray] | None = None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in _INFERENCE_NO_OPS:
            continue
        if dense is not None:
            raise UnsupportedModelError(f"layer {layer.name!r} ({kind}) after the output Dense")
        if kind == "LSTM":
            _check_lstm(layer)
            kernel, recurrent, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
            weights = LstmWeights(kernel, recurrent, bias, bool(layer.return_sequences))
            (decoder if repeat is not None else encoder).append(weights)
        elif kind == "RepeatVector" and repeat is None:
            repeat = int(layer.n)
        elif kind == "TimeDistributed" and type(layer.layer).__name__ == "Dense":
            inner = layer.layer
            if inner.get_config().get("activation", "linear") != "linear" or not inner.use_bias:
                raise UnsupportedModelError(f"the output Dense {inner.name!r} must be linear with a bias")
            kernel, bias = (np.asarray(w, dtype=np.float32) for w in inner.get_weights())
            dense = (kernel, bias)
        else:
            raise UnsupportedModelError(f"layer {layer.name!r} ({kind}) is not part of the LSTM autoencoder")
    if not encoder or not decoder or repeat is None or dense is None:
        raise UnsupportedModelError(
            "expected encoder LSTMs, a RepeatVector, decoder LSTMs and a TimeDistributed Dense"
        )
    if any(w.return_sequences for w in encoder[-1:]) or not all(w.return_sequences for w in encoder[:-1]):
        raise UnsupportedModelError("encoder LSTMs must return sequences except the last")
    if not all(w.return_sequences for w in decoder):
        raise UnsupportedModelError("decoder LSTMs must return sequences")
    sensors = int(encoder[0].kernel.shape[0])
    if dense[0].shape[1] != sensors:
        raise UnsupportedModelError(
            f"the output Dense has {dense[0].shape[1]} units for {sensors} input sensors"
        )
    return AutoencoderWeights(repeat, sensors, encoder, decoder, dense[0], dense[1])


def autoencoder_onnx(weights: AutoencoderWeights, opset: int = 17) -> bytes:
    """The ONNX model: ``windows (batch, steps, sensors)`` in, ``reconstruction`` of the same shape out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    initializers: list[Any] = []

    def constant(name: str, value: npt.NDArray[Any]) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    squeeze_axis = constant("time_major_direction_axis", np.array([1], dtype=np.int64))
    nodes.append(helper.make_node("Transpose", [INPUT_NAME], ["time_major"], perm=[1, 0, 2]))
    current = "time_major"
    layers = [("encoder", i, w) for i, w in enumerate(weights.encoder)]
    layers += [("decoder", i, w) for i, w in enumerate(weights.decoder)]
    for part, index, lstm in layers:
        name = f"{part}_{index}"
        units = lstm.units
        inputs = [
            current,
            constant(f"{name}_W", _onnx_gates(lstm.kernel, units).T[np.newaxis]),
            constant(f"{name}_R", _onnx_gates(lstm.recurrent_kernel, units).T[np.newaxis]),
            # ONNX adds an input bias and a recurrent bias; Keras has one, so the second is zero.
            constant(
                f"{name}_B",
                np.concatenate([_onnx_gates(lstm.bias, units), np.zeros(4 * units, np.float32)])[np.newaxis],
            ),
        ]
        if lstm.return_sequences:
            nodes.append(helper.make_node("LSTM", inputs, [f"{name}_y"], hidden_size=units, name=name))
            # Y is (steps, directions=1, batch, units): drop the direction axis.
            nodes.append(helper.make_node("Squeeze", [f"{name}_y", squeeze_axis], [f"{name}_out"]))
            current = f"{name}_out"
        else:
            # The bottleneck: the last hidden state (1, batch, units), repeated over time by broadcasting.
            nodes.append(helper.make_node("LSTM", inputs, ["", f"{name}_h"], hidden_size=units, name=name))
            repeat_shape = constant("repeat_shape", np.array([weights.steps, 1, 1], dtype=np.int64))
            nodes.append(helper.make_node("Expand", [f"{name}_h", repeat_shape], ["repeated"]))
            current = "repeated"
    nodes.append(
        helper.make_node("MatMul", [current, constant("dense_kernel", weights.dense_kernel)], ["dense_mul"])
    )
    nodes.append(
        helper.make_node("Add", ["dense_mul", constant("dense_bias", weights.dense_bias)], ["dense_out"])
    )
    nodes.append(helper.make_node("Transpose", ["dense_out"], [OUTPUT_NAME], perm=[1, 0, 2]))
    shape: list[str | int | None] = ["batch", weights.steps, weights.sensors]
    graph = helper.make_graph(
        nodes,
        "centinela_lstm_autoencoder",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, shape)],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="centinela"
    )
    model.ir_version = 8  # readable by every ONNX Runtime the project allows
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def keras_onnx_export(model: Any) -> bytes:
    """Keras 3's own ONNX export (tf2onnx); the model must have been called once."""
    import logging
    import tempfile
    import warnings
    from pathlib import Path

    # tf2onnx logs every graph rewrite at INFO; a user only needs to hear if it fails.
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="centinela-onnx-") as folder, warnings.catch_warnings():
        # Keras' tf2onnx shim probes ``np.object``, which NumPy 2 warns about; harmless here.
        warnings.simplefilter("ignore", FutureWarning)
        path = Path(folder) / "model.onnx"
        model.export(str(path), format="onnx", verbose=False)
        return path.read_bytes()


@dataclass(frozen=True)
class ServingExport:
    """The ONNX bytes, which writer made them, and how far they are from Keras on the sample."""

    onnx: bytes
    method: str
    max_abs_diff: float
    fallback_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "max_abs_diff_vs_keras": self.max_abs_diff,
            "fallback_reason": self.fallback_reason,
        }


DIRECT = "direct"
KERAS_EXPORT = "keras_export"
# The bundle contract: serving scores match Keras within 1e-4.
PARITY_TOLERANCE = 1e-4


def max_abs_diff_vs_keras(onnx_model: bytes, model: Any, sample: npt.ArrayLike) -> float:
    import onnxruntime as ort

    x = np.ascontiguousarray(sample, dtype=np.float32)
    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    (served,) = session.run(None, {session.get_inputs()[0].name: x})
    expected = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
    return float(np.max(np.abs(np.asarray(served) - expected))) if x.size else 0.0


def serving_export(model: Any, sample: npt.ArrayLike) -> ServingExport:
    """The direct graph when it reproduces ``model`` on ``sample`` within ``PARITY_TOLERANCE``;
    otherwise Keras' own export, with the reason. Raises if neither matches."""
    reason: str | None
    try:
        direct = autoencoder_onnx(read_keras_autoencoder(model))
        diff = max_abs_diff_vs_keras(direct, model, sample)
        if diff <= PARITY_TOLERANCE:
            return ServingExport(direct, DIRECT, diff)
        reason = f"direct graph differs from Keras by {diff:.2e} (> {PARITY_TOLERANCE:g})"
    except UnsupportedModelError as error:
        reason = str(error)
    model.predict(np.asarray(sample, dtype=np.float32)[:1], verbose=0)
    exported = keras_onnx_export(model)
    diff = max_abs_diff_vs_keras(exported, model, sample)
    if diff > PARITY_TOLERANCE:
        raise BundleError(f"Keras' ONNX export differs from the model by {diff:.2e} (> {PARITY_TOLERANCE:g})")
    return ServingExport(exported, KERAS_EXPORT, diff, reason)
