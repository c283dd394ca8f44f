"""Window scores: reconstruction error aggregated per window, and the ONNX Runtime scorer.

``reconstruction_errors`` is shared with the trainer, which scores its Keras model's output with it,
so calibration and serving measure the same thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.errors import BundleError, ConfigError, DataError

AGGREGATIONS: tuple[str, ...] = ("mean", "max", "topk")

FloatArray = npt.NDArray[np.float32]


def reconstruction_errors(
    x: npt.ArrayLike, x_hat: npt.ArrayLike, aggregation: str = "mean", topk: int = 5
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Score each window and split its error among sensors.

    ``x`` and ``x_hat`` are scaled ``(n, T, S)``. Per timestep the error is the mean squared error over
    sensors; ``mean`` averages it over the window, ``max`` takes the worst timestep, ``topk`` averages
    the ``topk`` worst timesteps (a short anomaly is not diluted by a long window). Contributions are
    each sensor's share of the window's squared error; rows sum to 1 (uniform for a perfect reconstruction).
    """
    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}")
    original = np.asarray(x, dtype=np.float64)
    rebuilt = np.asarray(x_hat, dtype=np.float64)
    if original.shape != rebuilt.shape or original.ndim != 3:
        raise DataError(
            f"x and x_hat must be the same (n, T, S) shape, got {original.shape} and {rebuilt.shape}"
        )
    n, steps, sensors = original.shape
    squared = (original - rebuilt) ** 2
    per_step = squared.mean(axis=2)
    if aggregation == "mean":
        scores = per_step.mean(axis=1) if steps else np.zeros(n)
    elif aggregation == "max":
        scores = per_step.max(axis=1) if steps else np.zeros(n)
    else:
        if topk < 1:
            raise ConfigError(f"topk must be at least 1, got {topk}")
        k = min(topk, steps)
        worst = np.partition(per_step, steps - k, axis=1)[:, steps - k :] if k else np.zeros((n, 0))
        scores = worst.mean(axis=1) if k else np.zeros(n)
    per_sensor = squared.sum(axis=1)
    totals = per_sensor.sum(axis=1, keepdims=True)
    uniform = np.full_like(per_sensor, 1.0 / sensors if sensors else 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        contributions = np.where(totals > 0, per_sensor / np.where(totals > 0, totals, 1.0), uniform)
    return scores, contributions


# Windows per ONNX Runtime call. Measured on the 2-core Zen 4 (quiet, batch 1024 in, LSTM 128-64):
# chunks of 128 score 9,750 windows/s, 256 9,330, 1024 8,200: a chunk's LSTM state stays in cache.
# ORT's arena also grows with the largest batch it has run, so small chunks bound memory too.
DEFAULT_MAX_BATCH = 128


class OnnxScorer:
    """Reconstructs scaled windows with ONNX Runtime on a fixed, small thread budget.

    Spinning is off so idle threads don't burn the cores the consumer needs, and batches above
    ``max_batch`` are split because ORT's arena grows with the largest batch it has seen.
    """

    def __init__(self, model_path: Path | str, threads: int = 2, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        import onnxruntime as ort

        if threads < 1 or max_batch < 1:
            raise ConfigError(f"threads and max_batch must be at least 1, got {threads} and {max_batch}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session: Any = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ORT raises its own exception types for unreadable models
            raise BundleError(f"ONNX Runtime cannot load {model_path}: {error}") from error
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise BundleError(f"the serving model must have one input, it has {len(inputs)}")
        self._input_name: str = inputs[0].name
        self.input_shape: tuple[object, ...] = tuple(inputs[0].shape)
        self.threads = threads
        self.max_batch = max_batch

    def reconstruct(self, x_scaled: npt.ArrayLike) -> FloatArray:
        """``x_hat`` for scaled windows ``(n, T, S)``, in chunks of at most ``max_batch``."""
        x = np.ascontiguousarray(x_scaled, dtype=np.float32)
        if x.ndim != 3:
            raise DataError(f"windows must be (n, T, S), got shape {x.shape}")
        if len(x) == 0:
            return np.empty_like(x)
        if len(x) <= self.max_batch:
            return self._run(x)
        parts = [self._run(x[start : start + self.max_batch]) for start in range(0, len(x), self.max_batch)]
        return np.concatenate(parts)

    def _run(self, x: FloatArray) -> FloatArray:
        try:
            (output,) = self._session.run(None, {self._input_name: x})
        except Exception as error:
            raise DataError(f"ONNX Runtime failed on a batch of shape {x.shape}: {error}") from error
        rebuilt = np.asarray(output, dtype=np.float32)
        if rebuilt.shape != x.shape:
            raise DataError(f"the model returned shape {rebuilt.shape} for input {x.shape}")
        return rebuilt
