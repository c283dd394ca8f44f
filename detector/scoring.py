"""Window scores: reconstruction error aggregated per window, and the ONNX Runtime scorer.

``reconstruction_errors`` is shared with the trainer, which scores its Keras model's output with it,
so calibration and serving measure the same thing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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


# Windows per ONNX Runtime call. Measured on the 2-core Zen 4 (quiet, LSTM 128-64, one single-thread
# session): calls of 32 score 5,608 windows/s, 64 5,446, 128 5,228, 256 4,843: a call's LSTM gates
# stay in cache. ORT's arena also grows with the largest batch it has run, so small calls bound
# memory too.
DEFAULT_MAX_BATCH = 32


class OnnxScorer:
    """Reconstructs scaled windows with ONNX Runtime on a fixed, small thread budget.

    ``threads`` single-threaded sessions ("lanes"), each scoring its own share of a batch's chunks
    at the same time: one 2-thread session splits every LSTM step between its threads and meets at
    a barrier 120 times a call, which two independent lanes avoid (``bench scoring``: 1.03-1.17×
    the one-session rate in the same run). Spinning is off so idle threads don't burn the cores the
    consumer needs, and batches are cut into calls of at most ``max_batch`` windows.
    """

    def __init__(self, model_path: Path | str, threads: int = 2, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if threads < 1 or max_batch < 1:
            raise ConfigError(f"threads and max_batch must be at least 1, got {threads} and {max_batch}")
        self._lanes: list[Any] = [cpu_session(model_path) for _ in range(threads)]
        inputs = self._lanes[0].get_inputs()
        if len(inputs) != 1:
            raise BundleError(f"the serving model must have one input, it has {len(inputs)}")
        self._input_name: str = inputs[0].name
        self.input_shape: tuple[object, ...] = tuple(inputs[0].shape)
        self.threads = threads
        self.max_batch = max_batch
        self._pool: ThreadPoolExecutor | None = None

    def reconstruct(self, x_scaled: npt.ArrayLike) -> FloatArray:
        """``x_hat`` for scaled windows ``(n, T, S)``, in chunks of at most ``max_batch``."""
        x = np.ascontiguousarray(x_scaled, dtype=np.float32)
        if x.ndim != 3:
            raise DataError(f"windows must be (n, T, S), got shape {x.shape}")
        if len(x) == 0:
            return np.empty_like(x)
        starts = range(0, len(x), self.max_batch)
        lanes = min(self.threads, len(starts))
        if lanes == 1:
            return self._run_share(0, x)
        # Each lane takes a contiguous run of chunks, so the lanes finish together.
        chunk_bounds = np.linspace(0, len(starts), lanes + 1).round().astype(int)
        rows = [min(int(b) * self.max_batch, len(x)) for b in chunk_bounds]
        shares = [x[rows[k] : rows[k + 1]] for k in range(lanes)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="onnx-lane")
        futures = [self._pool.submit(self._run_share, k, share) for k, share in enumerate(shares)]
        return np.concatenate([future.result() for future in futures])

    def close(self) -> None:
        """Stop the lanes' worker threads now (they also stop when the scorer is garbage-collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _run_share(self, lane: int, share: FloatArray) -> FloatArray:
        return np.concatenate(
            [self._run(lane, share[i : i + self.max_batch]) for i in range(0, len(share), self.max_batch)]
        )

    def _run(self, lane: int, x: FloatArray) -> FloatArray:
        try:
            (output,) = self._lanes[lane].run(None, {self._input_name: x})
        except Exception as error:
            raise DataError(f"ONNX Runtime failed on a batch of shape {x.shape}: {error}") from error
        rebuilt = np.asarray(output, dtype=np.float32)
        if rebuilt.shape != x.shape:
            raise DataError(f"the model returned shape {rebuilt.shape} for input {x.shape}")
        return rebuilt


def cpu_session(model: Path | str | bytes, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (a lane has 1), spinning off."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        source = model if isinstance(model, bytes) else str(model)
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own exception types for unreadable models
        where = "the given bytes" if isinstance(model, bytes) else model
        raise BundleError(f"ONNX Runtime cannot load {where}: {error}") from error
