"""Window scores: the scorer port (``Reconstructor``) and the reconstruction error aggregated per window.

``reconstruction_errors`` is shared with the trainer, which scores its Keras model's output with it,
so calibration and serving measure the same thing. The bundle reconstructs through any
``Reconstructor``; ONNX Runtime is one adapter (``detector.onnx_runtime``), a numpy stand-in for
tests another (``devtools.stand_ins.LinearReconstructor``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError, DataError

AGGREGATIONS: tuple[str, ...] = ("mean", "max", "topk")

FloatArray = npt.NDArray[np.float32]


class Reconstructor(Protocol):
    """The scorer port: a model that rebuilds scaled windows.

    ``reconstruct`` takes scaled windows ``(n, T, S)`` (``n`` may be 0) and returns ``x_hat`` as
    float32 of the same shape. An input that is not ``(n, T, S)`` raises ``DataError``; a model that
    fails or answers in another shape raises ``BundleError`` (the model, not the data, is wrong).
    """

    def reconstruct(self, x_scaled: npt.ArrayLike) -> FloatArray: ...


# Builds the reconstructor of a bundle's model file for windows of ``(T, S)``; raises ``BundleError``
# when the file is not a model of that geometry. ``load_bundle`` calls it once per load.
ReconstructorFactory = Callable[[Path, tuple[int, int]], Reconstructor]


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
