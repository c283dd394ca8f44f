"""SKAB's scoring, reimplemented: point-wise F1/FAR/MAR, event outcomes, and the NAB changepoint score.

Definitions follow the leaderboard's (``core/metrics.py`` of waico/SKAB, described in the data set's
LEADERBOARD.md): confusion counts are summed over every file's test part before F1, FAR and MAR are
taken; NAB uses 60 s windows to the right of each true changepoint, the first prediction in a window
scored on a tanh ramp. ``tests/unit/suites/test_skab_metrics.py`` proves this code reproduces the
published rows from the published predictions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int8]


@dataclass
class Confusion:
    """Point-wise counts; add files together, then read F1, FAR and MAR (both in percent)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def f1(self) -> float:
        denominator = self.tp + (self.fp + self.fn) / 2
        return self.tp / denominator if denominator else 0.0

    @property
    def far(self) -> float:
        negatives = self.fp + self.tn
        return 100.0 * self.fp / negatives if negatives else 0.0

    @property
    def mar(self) -> float:
        positives = self.fn + self.tp
        return 100.0 * self.fn / positives if positives else 0.0

    def summary(self) -> dict[str, float | int]:
        """Rounded as the leaderboard prints them (F1 to 2 decimals there; 3 here, to see small gaps)."""
        return {
            "f1": round(self.f1, 3),
            "far": round(self.far, 2),
            "mar": round(self.mar, 2),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


def confusion(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> Confusion:
    """Counts for one series of 0/1 labels and 0/1 predictions of the same length."""
    truth = np.asarray(labels) == 1
    flagged = np.asarray(predictions) == 1
    if truth.shape != flagged.shape:
        raise ValueError(f"labels and predictions differ in shape: {truth.shape} vs {flagged.shape}")
    return Confusion(
        tp=int((truth & flagged).sum()),
        fp=int((~truth & flagged).sum()),
        fn=int((truth & ~flagged).sum()),
        tn=int((~truth & ~flagged).sum()),
    )


def total(confusions: Iterable[Confusion]) -> Confusion:
    """Micro-average: the leaderboard sums counts over files before computing rates."""
    summed = Confusion()
    for item in confusions:
        summed = summed + item
    return summed


# --- events: each labelled anomaly segment caught or not, and how late ---------------------------------


@dataclass(frozen=True)
class EventOutcome:
    """One labelled anomaly segment of a test part."""

    file: str
    start_row: int
    rows: int
    caught: bool
    delay_s: float | None  # first alarm inside the segment minus the segment's first timestamp
    # An alarm that rose inside the segment, not one left on from before it (a false alarm running on).
    raised_inside: bool


@dataclass(frozen=True)
class FileEvents:
    """Events of one file's test part: its segments, and alarm runs that began on normal rows."""

    segments: list[EventOutcome]
    false_alarm_runs: int


def segments_of(labels: npt.ArrayLike) -> list[tuple[int, int]]:
    """Half-open ``[start, stop)`` row ranges where ``labels`` is 1."""
    flags = np.concatenate(([0], (np.asarray(labels) == 1).astype(np.int8), [0]))
    edges = np.diff(flags)
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def file_events(
    name: str, timestamps: npt.NDArray[np.datetime64], labels: npt.ArrayLike, predictions: npt.ArrayLike
) -> FileEvents:
    """Per segment: caught if any alarm falls inside it, delay from its start to the first such alarm."""
    truth = np.asarray(labels) == 1
    flagged = np.asarray(predictions) == 1
    rising = flagged & ~np.concatenate(([False], flagged[:-1]))
    outcomes = []
    for start, stop in segments_of(truth):
        hits = np.flatnonzero(flagged[start:stop])
        delay = None
        if hits.size:
            delay = float((timestamps[start + hits[0]] - timestamps[start]) / np.timedelta64(1, "s"))
        raised = bool(rising[start + 1 : stop].any()) or (bool(rising[start]) and start > 0)
        outcomes.append(EventOutcome(name, start, stop - start, bool(hits.size), delay, raised))
    return FileEvents(outcomes, int((rising & ~truth).sum()))


def event_summary(per_file: Sequence[FileEvents]) -> dict[str, float | int | None]:
    """Segments caught, delays (median, mean, p90 in seconds), false-alarm runs in the normal rows."""
    outcomes = [outcome for events in per_file for outcome in events.segments]
    delays = [outcome.delay_s for outcome in outcomes if outcome.delay_s is not None]
    return {
        "segments": len(outcomes),
        "caught": sum(outcome.caught for outcome in outcomes),
        "caught_pct": round(100.0 * sum(o.caught for o in outcomes) / len(outcomes), 1) if outcomes else None,
        "caught_by_alarm_raised_inside": sum(outcome.raised_inside for outcome in outcomes),
        "median_delay_s": float(np.median(delays)) if delays else None,
        "mean_delay_s": round(float(np.mean(delays)), 1) if delays else None,
        "p90_delay_s": float(np.percentile(delays, 90)) if delays else None,
        "false_alarm_runs": sum(events.false_alarm_runs for events in per_file),
        "files_with_false_alarm": sum(events.false_alarm_runs > 0 for events in per_file),
    }


# --- NAB as SKAB scores it ------------------------------------------------------------------------------

NAB_PROFILES: dict[str, tuple[float, float, float]] = {
    # name: (A_tp, A_fp, A_fn)
    "standard": (1.0, -0.11, -1.0),
    "low_fp": (1.0, -0.22, -1.0),
    "low_fn": (1.0, -0.11, -2.0),
}
_RAMP_POINTS = 1000


def _ramp(position: float, a_tp: float, a_fp: float) -> float:
    """The tanh ramp: A_tp at the window start falling to A_fp at its end."""
    index = min(int(position * _RAMP_POINTS), _RAMP_POINTS - 1)
    x = -math.pi / 2 + math.pi * index / (_RAMP_POINTS - 1)
    half = (a_tp - a_fp) / 2
    return half * -math.tanh(x) / math.tanh(math.pi / 2) + half + a_fp


def predicted_changepoints(predictions: npt.ArrayLike) -> IntArray:
    """SKAB's rule: both edges of each predicted anomalous run are changepoint alarms."""
    flags = np.asarray(predictions).astype(np.int8)
    if flags.size == 0:
        return flags
    return np.abs(np.diff(flags, prepend=np.int8(0))).astype(np.int8)


@dataclass
class NabTally:
    """Raw NAB sums over files; ``result()`` normalises them to the leaderboard's 0-100 scale."""

    scores: dict[str, float] = field(default_factory=lambda: dict.fromkeys(NAB_PROFILES, 0.0))
    windows: int = 0
    missed: int = 0
    false_positives: int = 0
    delays_s: list[float] = field(default_factory=list)

    def add_file(
        self,
        timestamps: npt.NDArray[np.datetime64],
        true_changepoints: npt.ArrayLike,
        predicted: npt.ArrayLike,
        window_s: float = 60.0,
    ) -> None:
        """Score one file; ``predicted`` are changepoint alarms (see ``predicted_changepoints``)."""
        seconds = (timestamps - timestamps[0]) / np.timedelta64(1, "s")
        true_times = seconds[np.asarray(true_changepoints) == 1]
        alarm_times = np.sort(seconds[np.asarray(predicted) == 1])
        windows = [[float(t), float(t) + window_s] for t in true_times]
        # Overlapping windows: the later one starts where the earlier one ends ("cut right window").
        for earlier, later in itertools.pairwise(windows):
            later[0] = max(later[0], earlier[1])
        self.windows += len(windows)
        if not windows:
            self._false(len(alarm_times))
            return
        outside = int((alarm_times < windows[0][0]).sum()) + int((alarm_times > windows[-1][1]).sum())
        for earlier, later in itertools.pairwise(windows):
            outside += int(((alarm_times > earlier[1]) & (alarm_times < later[0])).sum())
        self._false(outside)
        for start, end in windows:
            inside = alarm_times[(alarm_times >= start) & (alarm_times <= end)]
            if inside.size == 0:
                self.missed += 1
                for name, (_, _, a_fn) in NAB_PROFILES.items():
                    self.scores[name] += a_fn
                continue
            self.delays_s.append(float(inside[0] - start))
            position = (inside[0] - start) / (end - start) if end > start else 0.0
            for name, (a_tp, a_fp, _) in NAB_PROFILES.items():
                self.scores[name] += _ramp(float(position), a_tp, a_fp)

    def _false(self, count: int) -> None:
        self.false_positives += count
        for name, (_, a_fp, _) in NAB_PROFILES.items():
            self.scores[name] += a_fp * count

    def result(self) -> dict[str, float | int | None]:
        """NAB per profile as 100 · (S − S_null) / (S_perfect − S_null), plus missed CPs and FPs."""
        out: dict[str, float | int | None] = {}
        for name, (a_tp, _, a_fn) in NAB_PROFILES.items():
            null, perfect = self.windows * a_fn, self.windows * a_tp
            out[name] = (
                round(100.0 * (self.scores[name] - null) / (perfect - null), 2) if self.windows else None
            )
        out["missed"] = self.missed
        out["false_positives"] = self.false_positives
        out["changepoints"] = self.windows
        out["mean_delay_s"] = round(float(np.mean(self.delays_s)), 1) if self.delays_s else None
        return out
