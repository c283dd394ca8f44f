"""The operating point an operator can live with: a threshold from a false-alarm budget, checked
on normal windows it was never fitted on.

**Budget** (``budget_threshold``): an *alarm* is a run of consecutive windows of one station above
the threshold (with the service's default policy, k = n = 1, each such run is one incident). The
exposure is the time the normal windows cover (one step per window) in station-months of 30 days.
The threshold is the lowest at which the normal windows given (validation and the early-stopping
holdout) raise at most ``budget × exposure`` alarms, and never below what an exponential tail
fitted to the alarm-run peaks puts at ``budget`` alarms per station-month. A few days of validation
hold far less than a month, so the tail is what extends the largest normal score seen to the
month's rarer excursions; with too few peaks to fit a tail the largest normal score is used.

**Holdout check** (``check_operating_point``): the share of the test split's normal windows (never
fitted by the model nor used for the threshold) at or above the threshold. Sensors that drift after
the training period put most of those windows above a threshold that was right on validation; the
trainer reports it loudly, marks the bundle and refuses to exit 0 unless told to accept it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError

FALSE_ALARM_BUDGET = "false_alarm_budget"
DEFAULT_ALARM_BUDGET = 1.0  # alarms per station-month on normal windows
DEFAULT_MAX_NORMAL_ALARM_SHARE = 0.05  # of the never-fitted normal windows
MONTH = timedelta(days=30)
TAIL_BASE_QUANTILE = 0.9  # runs above this quantile of the normal scores are the tail's excursions
MIN_TAIL_PEAKS = 8


@dataclass(frozen=True)
class NormalWindows:
    """Scores of normal windows with where and when each ends (station then time order)."""

    scores: npt.NDArray[np.float64]
    station_ids: npt.NDArray[np.str_]
    ends: npt.NDArray[np.datetime64]

    def __post_init__(self) -> None:
        if not (len(self.scores) == len(self.station_ids) == len(self.ends)):
            raise ValueError("scores, station_ids and ends must have the same length")

    @staticmethod
    def join(parts: list[NormalWindows]) -> NormalWindows:
        return NormalWindows(
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.station_ids for p in parts]),
            np.concatenate([p.ends for p in parts]),
        )


def check_budget_options(budget: float, max_share: float) -> None:
    if not (math.isfinite(budget) and budget > 0):
        raise ConfigError(
            f"--alarm-budget must be a positive number of alarms per station-month, got {budget}"
        )
    if not 0 < max_share <= 1:
        raise ConfigError(f"--max-normal-alarm-share must be in (0, 1], got {max_share}")


def continues_previous(windows: NormalWindows, step: timedelta) -> npt.NDArray[np.bool_]:
    """True where a window directly follows the previous one of the same station (one step later)."""
    follows = np.zeros(len(windows.scores), dtype=bool)
    if len(follows) > 1:
        same = windows.station_ids[1:] == windows.station_ids[:-1]
        adjacent = (windows.ends[1:] - windows.ends[:-1]) == np.timedelta64(step)
        follows[1:] = same & adjacent
    return follows


def alarm_runs(windows: NormalWindows, step: timedelta, threshold: float) -> int:
    """Runs of consecutive windows of one station with ``score >= threshold`` (alarms raised)."""
    above = windows.scores >= threshold
    follows = continues_previous(windows, step)
    previous_above = np.zeros_like(above)
    previous_above[1:] = above[:-1]
    return int((above & ~(follows & previous_above)).sum())


def exposure_months(windows: NormalWindows, step: timedelta) -> float:
    """Station-months the normal windows cover: one step of time per window."""
    return len(windows.scores) * (step / MONTH)


def _runs_at_every_cut(
    windows: NormalWindows, step: timedelta
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Every distinct score ``v`` and the alarm runs at threshold ``v`` (alarm when ``>= v``).

    Runs = windows above - adjacent pairs both above; both counts come from sorted arrays at once.
    """
    scores = windows.scores
    follows = continues_previous(windows, step)
    pair_min = np.minimum(scores[1:], scores[:-1])[follows[1:]]
    cuts = np.unique(scores)
    sorted_scores, sorted_pairs = np.sort(scores), np.sort(pair_min)
    above = len(sorted_scores) - np.searchsorted(sorted_scores, cuts, side="left")
    pairs = len(sorted_pairs) - np.searchsorted(sorted_pairs, cuts, side="left")
    return cuts, (above - pairs).astype(np.int64)


def _run_peaks(windows: NormalWindows, step: timedelta, base: float) -> npt.NDArray[np.float64]:
    above = windows.scores >= base
    follows = continues_previous(windows, step)
    peaks: list[float] = []
    current = -math.inf
    for score, is_above, joined in zip(
        windows.scores.tolist(), above.tolist(), follows.tolist(), strict=True
    ):
        if is_above and joined and current > -math.inf:
            current = max(current, score)
            continue
        if current > -math.inf:
            peaks.append(current)
        current = score if is_above else -math.inf
    if current > -math.inf:
        peaks.append(current)
    return np.asarray(peaks, dtype=np.float64)


def budget_threshold(
    windows: NormalWindows, step: timedelta, budget: float = DEFAULT_ALARM_BUDGET
) -> tuple[float, dict[str, Any]]:
    """The threshold meeting ``budget`` alarms per station-month on ``windows`` (see module doc)."""
    if not len(windows.scores):
        raise ConfigError("the false-alarm budget needs normal windows to count alarms on")
    months = exposure_months(windows, step)
    allowed = budget * months
    cuts, runs = _runs_at_every_cut(windows, step)
    # The lowest cut from which every higher cut also keeps within the allowance.
    over = np.flatnonzero(runs > allowed)
    if len(over) == 0:
        empirical = float(cuts[0])
    elif over[-1] + 1 < len(cuts):
        empirical = float((cuts[over[-1]] + cuts[over[-1] + 1]) / 2)
    else:
        empirical = float(np.nextafter(cuts[-1], math.inf))
    largest = float(cuts[-1])
    notes: dict[str, Any] = {
        "budget_per_station_month": budget,
        "normal_windows": len(windows.scores),
        "station_months": round(months, 4),
        "allowed_alarms": round(allowed, 3),
        "largest_normal_score": largest,
        "empirical_threshold": empirical,
    }
    base = float(np.quantile(windows.scores, TAIL_BASE_QUANTILE))
    peaks = _run_peaks(windows, step, base)
    notes["tail_peaks"] = len(peaks)
    threshold = empirical
    if len(peaks) >= MIN_TAIL_PEAKS and months > 0:
        scale = max(float((peaks - base).mean()), 1e-12)
        rate = len(peaks) / months
        tail = base + scale * math.log(max(rate / budget, 1.0))
        notes.update(
            {"tail_base": base, "tail_scale": scale, "tail_rate_per_month": rate, "tail_threshold": tail}
        )
        threshold = max(threshold, tail)
        notes["rule"] = "tail" if tail >= empirical else "empirical"
    else:
        # Too few excursions to fit a tail: no alarm allowed beyond what was seen.
        threshold = max(threshold, largest) if allowed < 1 else threshold
        notes["rule"] = "largest normal score (too few excursions for a tail)" if allowed < 1 else "empirical"
    notes["alarms_at_threshold"] = alarm_runs(windows, step, threshold)
    return float(threshold), notes


def per_station_budget_thresholds(
    windows: NormalWindows, step: timedelta, budget: float = DEFAULT_ALARM_BUDGET
) -> dict[str, float]:
    """Each station's own budget threshold on its own normal windows. The bundle serves the pooled
    threshold, raised to a station's own where that is higher (``served_station_thresholds``)."""
    out: dict[str, float] = {}
    for station in np.unique(windows.station_ids).tolist():
        mine = windows.station_ids == station
        own = NormalWindows(windows.scores[mine], windows.station_ids[mine], windows.ends[mine])
        out[str(station)] = budget_threshold(own, step, budget)[0]
    return out


@dataclass(frozen=True)
class OperatingPointCheck:
    """How the threshold fares on normal windows never fitted (the test split's), overall and per
    station (``per_station``: normal windows, alarming windows, alarms), since one drifted station
    can hide among healthy ones."""

    threshold: float
    normal_windows: int
    alarming_windows: int
    alarms: int
    station_months: float
    max_share: float
    per_station: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.alarming_windows / self.normal_windows if self.normal_windows else 0.0

    @property
    def checked(self) -> bool:
        return self.normal_windows > 0

    @property
    def acceptable(self) -> bool:
        return self.share <= self.max_share

    @property
    def alarms_per_station_month(self) -> float | None:
        return self.alarms / self.station_months if self.station_months > 0 else None

    def message(self) -> str:
        if not self.checked:
            return "operating point NOT CHECKED: the test split holds no normal window"
        rate = self.alarms_per_station_month
        figures = (
            f"{self.alarming_windows} of {self.normal_windows} normal test windows "
            f"({100 * self.share:.1f} %) at or above the threshold {self.threshold:.4g}, "
            f"{self.alarms} alarm(s)" + (f", {rate:.2f} per station-month" if rate is not None else "")
        )
        worst = max(
            self.per_station.items(),
            key=lambda item: item[1]["alarming_windows"] / max(item[1]["normal_windows"], 1),
            default=None,
        )
        if worst is not None and len(self.per_station) > 1:
            name, counts = worst
            figures += (
                f"; most at station {name!r}: {counts['alarming_windows']} of {counts['normal_windows']}"
            )
        if self.acceptable:
            return f"operating point OK: {figures}"
        return (
            f"OPERATING POINT REJECTED: {figures}; more than the allowed {100 * self.max_share:g} % "
            "(--max-normal-alarm-share). The sensors may have drifted after the training period or the "
            "validation period may not represent normal operation: the bundle is marked "
            "operating_point.accepted = false"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": "test (normal windows, never fitted)",
            "threshold": self.threshold,
            "normal_windows": self.normal_windows,
            "alarming_windows": self.alarming_windows,
            "share": self.share,
            "max_share": self.max_share,
            "alarms": self.alarms,
            "station_months": self.station_months,
            "alarms_per_station_month": self.alarms_per_station_month,
            "checked": self.checked,
            "acceptable": self.acceptable,
            "per_station": self.per_station,
        }


def check_operating_point(
    windows: NormalWindows, step: timedelta, threshold: float, max_share: float
) -> OperatingPointCheck:
    """Share of ``windows`` (normal, never fitted) at or above ``threshold``, and the alarms they raise."""
    per_station = {}
    for station in np.unique(windows.station_ids).tolist():
        mine = windows.station_ids == station
        part = NormalWindows(windows.scores[mine], windows.station_ids[mine], windows.ends[mine])
        per_station[str(station)] = {
            "normal_windows": int(mine.sum()),
            "alarming_windows": int((part.scores >= threshold).sum()),
            "alarms": alarm_runs(part, step, threshold),
        }
    return OperatingPointCheck(
        threshold=threshold,
        normal_windows=len(windows.scores),
        alarming_windows=int((windows.scores >= threshold).sum()),
        alarms=alarm_runs(windows, step, threshold),
        station_months=exposure_months(windows, step),
        max_share=max_share,
        per_station=per_station,
    )


def served_station_thresholds(shared: float, per_station: dict[str, float] | None) -> dict[str, float]:
    """The stations whose own budget threshold is above the shared one, at their own.

    Only ever higher: a noisy station keeps its own budget instead of spending everyone's, and every
    station alarms at most as often as the shared threshold the operating-point check accepted."""
    return {station: value for station, value in (per_station or {}).items() if value > shared}
