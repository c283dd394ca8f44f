"""Station clocks: each RTU stamps its readings by its own clock, which is a little off.

Contract: the value a station sampled at true minute ``t`` (row ``t`` of every array) is written
with the timestamp ``t + offset[t, station]`` seconds. The offset is the station's fixed error,
drawn uniform in ``±clock_skew_s``, plus a slow wander (standard deviation ``clock_wander_s``,
correlation time about a day, as NTP-less clocks drift and are corrected), clipped to
``±clock_skew_s`` and rounded to whole seconds. Labels and events stay in true time: a row's label
is that of the minute its value was sampled in, whatever its stamp says.

A reader that snaps stamps to the nearest minute (``detector.windows`` does) places a station whose
clock is more than 30 s off in the neighbouring minute, so a step that happens in one true minute
can land in different minutes at two stations; a clock whose wander crosses ±30 s gives that
station a duplicated or an empty minute there. Offsets move by well under a minute per minute, so
each station's stamps still increase strictly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simulator.noise import ar1

Offsets = npt.NDArray[np.int32]

WANDER_PHI = 0.999  # per minute: a correlation time of about 1,000 minutes


def draw_offsets(
    rng: np.random.Generator, minutes: int, stations: int, skew_s: float, wander_s: float
) -> Offsets:
    """Clock offsets in whole seconds, ``(minutes, stations)``; zeros when ``skew_s`` is 0."""
    if skew_s == 0.0:
        return np.zeros((minutes, stations), dtype=np.int32)
    fixed = rng.uniform(-skew_s, skew_s, size=stations)
    wander = wander_s * ar1(rng, minutes, stations, WANDER_PHI) if wander_s else 0.0
    offsets = np.clip(fixed[None, :] + wander, -skew_s, skew_s)
    return np.rint(offsets).astype(np.int32)


def snap_to_minutes(offsets: Offsets) -> npt.NDArray[np.int64]:
    """Which minute a reader that snaps to the nearest minute files each sample under, ``(T, N)``.

    Half a minute exactly rounds up, as ``detector.windows`` does ((ns + half) // minute).
    """
    minutes = np.arange(offsets.shape[0], dtype=np.int64)[:, None]
    return minutes + (offsets.astype(np.int64) + 30) // 60


def as_read(values: npt.NDArray[np.float64], offsets: Offsets) -> npt.NDArray[np.float64]:
    """``values`` (T, N, by true minute) as a reader snapping stamps to the minute grid sees them.

    Per station, the first sample filed under a minute wins (later ones are duplicates, dropped); a
    minute no sample was filed under holds the previous minute's value (NaN at the very start).
    """
    minutes, stations = values.shape
    slots = snap_to_minutes(offsets)
    out = np.full((minutes, stations), np.nan)
    filled = np.zeros((minutes, stations), dtype=bool)
    for j in range(stations):
        slot = slots[:, j]
        inside = (slot >= 0) & (slot < minutes)
        rows = np.flatnonzero(inside)
        # Stamps increase with the row, so the first sample of a slot is the first occurrence.
        first = np.ones(len(rows), dtype=bool)
        first[1:] = slot[rows][1:] != slot[rows][:-1]
        out[slot[rows][first], j] = values[rows[first], j]
        filled[slot[rows][first], j] = True
    # Forward-fill the empty minutes (a reader holds the last value over a short gap).
    index = np.where(filled, np.arange(minutes)[:, None], -1)
    np.maximum.accumulate(index, axis=0, out=index)
    held = np.take_along_axis(out, np.maximum(index, 0), axis=0)
    return np.asarray(np.where(index >= 0, held, np.nan), dtype=np.float64)
