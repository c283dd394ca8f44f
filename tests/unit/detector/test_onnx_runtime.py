"""The ONNX Runtime adapter of the scorer port."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.errors import BundleError, ConfigError, DataError
from detector.onnx_runtime import OnnxScorer, onnx_scorers
from devtools.stand_ins import linear_onnx_model


@pytest.fixture
def linear_model(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(linear_onnx_model(30, 5, factor=0.5))
    return path


def test_onnx_scorer_reconstructs_and_splits_big_batches(linear_model: Path) -> None:
    scorer = OnnxScorer(linear_model, threads=1, max_batch=7)
    x = np.random.default_rng(2).normal(size=(23, 30, 5)).astype(np.float32)
    np.testing.assert_allclose(scorer.reconstruct(x), 0.5 * x, rtol=1e-6)
    assert scorer.reconstruct(np.empty((0, 30, 5))).shape == (0, 30, 5)
    with pytest.raises(DataError):
        scorer.reconstruct(np.zeros((30, 5)))  # not windows: the caller's mistake
    with pytest.raises(BundleError, match="ONNX Runtime failed on a batch of shape"):
        scorer.reconstruct(np.zeros((1, 30, 4)))  # ORT's own error stops at the adapter


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("windows", [1, 6, 7, 8, 20, 21, 22, 100])
def test_lanes_split_a_batch_and_keep_its_order(linear_model: Path, threads: int, windows: int) -> None:
    scorer = OnnxScorer(linear_model, threads=threads, max_batch=7)
    x = np.random.default_rng(windows).normal(size=(windows, 30, 5)).astype(np.float32)
    np.testing.assert_allclose(scorer.reconstruct(x), 0.5 * x, rtol=1e-6)
    scorer.close()
    # Closed lanes start again on the next batch.
    np.testing.assert_allclose(scorer.reconstruct(x[::-1]), 0.5 * x[::-1], rtol=1e-6)
    scorer.close()


def test_lanes_score_concurrent_callers_without_mixing_batches(linear_model: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    scorer = OnnxScorer(linear_model, threads=2, max_batch=5)
    batches = [np.full((37, 30, 5), float(i), dtype=np.float32) for i in range(12)]
    with ThreadPoolExecutor(4) as callers:
        results = list(callers.map(scorer.reconstruct, batches))
    for i, result in enumerate(results):
        np.testing.assert_allclose(result, 0.5 * i)
    scorer.close()


def test_a_dropped_scorer_leaves_no_lane_threads(linear_model: Path) -> None:
    # A hot reload drops the old bundle's scorer without closing it: its lanes must not pile up.
    import gc
    import threading
    import time

    def lanes() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("onnx-lane"))

    before = lanes()
    for _ in range(5):
        scorer = OnnxScorer(linear_model, threads=2, max_batch=4)
        scorer.reconstruct(np.zeros((16, 30, 5), dtype=np.float32))
        assert lanes() >= before + 1
        del scorer
    gc.collect()
    deadline = time.monotonic() + 5.0
    while lanes() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lanes() <= before


def test_onnx_scorer_refuses_bad_settings(linear_model: Path) -> None:
    with pytest.raises(ConfigError):
        OnnxScorer(linear_model, threads=0)
    with pytest.raises(ConfigError):
        OnnxScorer(linear_model, max_batch=0)

    with pytest.raises(ConfigError):
        onnx_scorers(threads=0)


def test_the_factory_checks_the_window_geometry(linear_model: Path) -> None:
    scorer = onnx_scorers(threads=1, max_batch=3)(linear_model, (30, 5))
    assert (scorer.threads, scorer.max_batch) == (1, 3)
    with pytest.raises(BundleError, match="input axis 2 is 5, the manifest implies 6"):
        OnnxScorer.from_path(linear_model, (30, 6))
