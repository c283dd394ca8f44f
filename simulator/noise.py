"""Instruments: noise with memory, slow drift, a fixed calibration bias, quantisation.

AR(1) noise is what a real transmitter's error looks like minute to minute (filtered, correlated);
i.i.d. noise would let a detector average it away far too easily.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simulator.scenario import SensorNoise

Array = npt.NDArray[np.float64]

BLOCK = 64
DRIFT_KNOT_MINUTES = 60
MINUTES_PER_MONTH = 30 * 24 * 60


def ar1(rng: np.random.Generator, minutes: int, columns: int, phi: float) -> Array:
    """Unit-variance stationary AR(1) series, one per column: x[t] = phi x[t-1] + sqrt(1-phi²) e[t].

    Computed block-wise with one matrix product per block and a short carry loop between blocks,
    which is exact and about a hundred times faster than a per-sample Python recursion.
    """
    if minutes == 0:
        return np.zeros((0, columns))
    if phi == 0.0:
        return rng.standard_normal((minutes, columns))
    blocks = -(-minutes // BLOCK)
    innovations = rng.standard_normal((blocks * BLOCK, columns)) * np.sqrt(1.0 - phi * phi)
    start = rng.standard_normal(columns)
    lags = np.arange(BLOCK)
    lower = np.tril(phi ** (lags[:, None] - lags[None, :]).clip(min=0))
    lower = np.where(lags[:, None] >= lags[None, :], lower, 0.0)
    within = lower @ innovations.reshape(blocks, BLOCK, columns)  # (blocks, BLOCK, columns)
    decay = phi ** (lags + 1)  # effect of the previous block's last value on each position
    carry = np.empty((blocks, columns))
    previous = start
    for b in range(blocks):
        carry[b] = previous
        previous = within[b, -1] + decay[-1] * previous
    series = within + decay[None, :, None] * carry[:, None, :]
    return np.asarray(series.reshape(blocks * BLOCK, columns)[:minutes], dtype=np.float64)


def drift(rng: np.random.Generator, minutes: int, columns: int, per_month: float) -> Array:
    """A random walk with standard deviation ``per_month`` after 30 days, plus a calibration bias."""
    if per_month == 0.0 or minutes == 0:
        return np.zeros((minutes, columns))
    knots = minutes // DRIFT_KNOT_MINUTES + 2
    step = per_month * np.sqrt(DRIFT_KNOT_MINUTES / MINUTES_PER_MONTH)
    walk = np.cumsum(rng.standard_normal((knots, columns)) * step, axis=0)
    walk += rng.standard_normal(columns) * 0.5 * per_month  # meter factor / zero error at calibration
    position = np.arange(minutes) / DRIFT_KNOT_MINUTES
    index = position.astype(np.int64)
    weight = (position - index)[:, None]
    return np.asarray(walk[index] * (1.0 - weight) + walk[index + 1] * weight, dtype=np.float64)


def measure(rng: np.random.Generator, truth: Array, noise: SensorNoise, scale: float) -> Array:
    """What the instrument reports for ``truth`` (T, N), before faults and quantisation."""
    minutes, columns = truth.shape
    if scale == 0.0:
        return truth.copy()
    error = noise.sigma * scale * ar1(rng, minutes, columns, noise.phi)
    error += drift(rng, minutes, columns, noise.drift_per_month * scale)
    if noise.relative:
        return np.asarray(truth * (1.0 + error), dtype=np.float64)
    return np.asarray(truth + error, dtype=np.float64)


def quantise(values: Array, quantum: float) -> Array:
    return np.asarray(np.round(values / quantum) * quantum, dtype=np.float64)
