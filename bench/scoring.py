"""``centinela bench scoring``: windows scored per second by the serving runtime vs one-window Keras.

The model is the original pipeline's architecture (LSTM 128-64 encoder, RepeatVector, LSTM 64-128
decoder, per-step Dense; 30 steps × 5 sensors) with random weights (seed 0): speed does not depend
on the weights. It is exported with Keras 3's ``model.export(format="onnx")`` and served by
``detector.scoring.OnnxScorer``. The baseline, measured in the same run, is ``model.predict`` on one
window at a time, which is how the original pipeline scored.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.record import BenchResult, median_of, rate
from detector.scoring import FloatArray, OnnxScorer
from detector.testing import export_onnx, keras_autoencoder

STEPS, SENSORS = 30, 5
UNITS = (128, 64)


def windows_per_s(
    score: Callable[[FloatArray], object], windows: FloatArray, batch: int, repeat: int
) -> float:
    """Rate of ``score`` over ``windows`` cut into ``batch``-sized calls, median of ``repeat`` runs."""
    chunks = [windows[i : i + batch] for i in range(0, len(windows), batch)]
    score(chunks[0])  # warm-up: allocations, kernel selection

    def once() -> float:
        start = time.perf_counter()
        for chunk in chunks:
            score(chunk)
        return rate(len(windows), time.perf_counter() - start)

    return median_of(repeat, once)


def count_lstm_ops(onnx_bytes: bytes) -> float:
    try:
        import onnx
    except ImportError:
        return float("nan")
    model = onnx.load_from_string(onnx_bytes)
    return float(sum(1 for node in model.graph.node if node.op_type == "LSTM"))


def run(quick: bool) -> BenchResult:
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    model = keras_autoencoder(STEPS, SENSORS, UNITS, seed=0)
    onnx_bytes = export_onnx(model, STEPS, SENSORS)
    sizes = {1: 100 if quick else 500, 64: 640 if quick else 2_560, 1024: 2_048 if quick else 8_192}
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(onnx_bytes)
        probe = rng.normal(size=(64, STEPS, SENSORS)).astype(np.float32)
        for threads in (2, 1):
            scorer = OnnxScorer(path, threads=threads, max_batch=1024)
            suffix = "" if threads == 2 else "_threads1"
            for batch, count in sizes.items():
                if threads == 1 and batch == 64:
                    continue
                windows = rng.normal(size=(count, STEPS, SENSORS)).astype(np.float32)
                figures[f"windows_per_s_b{batch}{suffix}"] = windows_per_s(
                    scorer.reconstruct, windows, batch, 3
                )
            if threads == 2:
                figures["b1_latency_ms"] = 1000.0 / figures["windows_per_s_b1"]
                max_diff = float(np.abs(scorer.reconstruct(probe) - model.predict(probe, verbose=0)).max())

    def keras_one(window: FloatArray) -> object:
        return model.predict(window, verbose=0)

    keras_windows = rng.normal(size=(10 if quick else 30, STEPS, SENSORS)).astype(np.float32)
    keras_b1 = windows_per_s(keras_one, keras_windows, 1, 3)
    big = rng.normal(size=(1024, STEPS, SENSORS)).astype(np.float32)
    keras_b1024 = windows_per_s(lambda w: model.predict(w, batch_size=1024, verbose=0), big, 1024, 3)

    figures["onnx_vs_keras_max_abs_diff"] = max_diff
    figures["onnx_lstm_ops"] = count_lstm_ops(onnx_bytes)
    return BenchResult(
        name="scoring",
        figures=figures,
        baseline={
            "keras_predict_b1_windows_per_s": keras_b1,
            "keras_predict_b1024_windows_per_s": keras_b1024,
        },
        ratio={
            "b1024_vs_keras_b1": figures["windows_per_s_b1024"] / keras_b1,
            "b1024_vs_keras_b1024": figures["windows_per_s_b1024"] / keras_b1024,
            "b1024_threads2_vs_threads1": (
                figures["windows_per_s_b1024"] / figures["windows_per_s_b1024_threads1"]
            ),
        },
        targets={"windows_per_s_b1024": ">= 10,000", "b1024_vs_keras_b1": ">= 300"},
        notes=(
            "Original architecture (LSTM 128-64 / RepeatVector / LSTM 64-128 / TimeDistributed Dense, "
            "30x5), random weights seed 0, Keras 3 model.export(format='onnx'), ONNX Runtime CPU with "
            "spinning off, intra-op threads 2 (1 for the _threads1 figures); medians of 3 repetitions. "
            f"1-minute load average before/after: {load_before:.2f}/{os.getloadavg()[0]:.2f} "
            f"on {os.cpu_count()} cores (other work on a shared machine lowers these figures)."
        ),
    )
