"""The ONNX Runtime adapter of the scorer port: the only module that touches ``onnxruntime``.

``OnnxScorer`` is a ``detector.scoring.Reconstructor``; ``onnx_scorers(threads, max_batch)`` is the
``ReconstructorFactory`` the service builds from its settings, and ``OnnxScorer.from_path`` the
default ``load_bundle`` uses. ORT's own exceptions stop here: a model that cannot be loaded or fails
on a batch is a ``BundleError``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.errors import BundleError, ConfigError, DataError
from detector.scoring import FloatArray, ReconstructorFactory

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
        _check_budget(threads, max_batch)
        self._lanes: list[Any] = [cpu_session(model_path) for _ in range(threads)]
        inputs = self._lanes[0].get_inputs()
        if len(inputs) != 1:
            raise BundleError(f"the serving model must have one input, it has {len(inputs)}")
        self._input_name: str = inputs[0].name
        self.input_shape: tuple[object, ...] = tuple(inputs[0].shape)
        self.threads = threads
        self.max_batch = max_batch
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_path(
        cls,
        model_path: Path,
        window_shape: tuple[int, int],
        *,
        threads: int = 2,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> OnnxScorer:
        """A scorer of ``model_path`` checked to take ``(batch, T, S)`` windows of ``window_shape``
        (``BundleError`` naming the axis otherwise); the default factory of ``load_bundle``."""
        scorer = cls(model_path, threads=threads, max_batch=max_batch)
        scorer.check_window_shape(window_shape)
        return scorer

    def check_window_shape(self, window_shape: tuple[int, int]) -> None:
        """Refuse a model whose declared input is not ``(batch, T, S)`` with ``(T, S) = window_shape``
        (a symbolic axis accepts any size)."""
        shape = self.input_shape
        if len(shape) != 3:
            raise BundleError(f"the model takes a {len(shape)}-d input, expected (batch, T, S)")
        for axis, (got, want) in enumerate(zip(shape[1:], window_shape, strict=True), start=1):
            if isinstance(got, int) and got != want:
                raise BundleError(f"the model's input axis {axis} is {got}, the manifest implies {want}")

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
        except Exception as error:  # ORT raises its own exception types; the model is what failed
            raise BundleError(f"ONNX Runtime failed on a batch of shape {x.shape}: {error}") from error
        rebuilt = np.asarray(output, dtype=np.float32)
        if rebuilt.shape != x.shape:
            raise BundleError(f"the model returned shape {rebuilt.shape} for input {x.shape}")
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


def onnx_scorers(threads: int = 2, max_batch: int = DEFAULT_MAX_BATCH) -> ReconstructorFactory:
    """The factory ``load_bundle`` takes, serving every bundle with ``threads`` lanes and ORT calls of
    at most ``max_batch`` windows; bad numbers are refused here, before any bundle is read."""
    _check_budget(threads, max_batch)

    def build(model_path: Path, window_shape: tuple[int, int]) -> OnnxScorer:
        return OnnxScorer.from_path(model_path, window_shape, threads=threads, max_batch=max_batch)

    return build


def _check_budget(threads: int, max_batch: int) -> None:
    if threads < 1 or max_batch < 1:
        raise ConfigError(f"threads and max_batch must be at least 1, got {threads} and {max_batch}")
