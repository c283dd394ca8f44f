"""What the trainer learns per segment, as plain data (it travels in the bundle's manifest)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from detector.errors import BundleError

CALIBRATION_FORMAT = 1

# The windows (minutes) over which the cumulative balance is tested; see detector/line/segment.py.
DEFAULT_WINDOWS: tuple[int, ...] = (5, 10, 20, 40, 80, 160)


def default_window_sigma(windows: tuple[int, ...]) -> tuple[float, ...]:
    """Spread (m3) of the cumulative balance over each window on a 250 m2 tank line, before training.

    Two terms: the level gauge's error at the window's two ends (about 1.8 m3, it does not grow with
    the window) and the flow meters' correlated noise plus bias error (grows with the window).
    """
    return tuple(
        round((1.8**2 + (0.35 * minutes**0.5) ** 2 + (minutes / 60.0) ** 2) ** 0.5, 3) for minutes in windows
    )


@dataclass(frozen=True, slots=True)
class SegmentCalibration:
    """One segment's noise level and sequential-test limits, learned on the training period.

    ``limit`` is the decision limit of the test statistic (``method`` says which statistic):
    ``windows`` (default): the largest standardised cumulative balance over ``windows`` minutes,
    ``max_W (V_W - drift·W/60) / sigma_W``; ``cusum``: the CUSUM of the balance in m3.
    ``skew_gain`` corrects a clock offset between the two stations (m3/h of balance per m3/h of
    upstream flow change in the minute); ``pressure_*`` weigh the upstream pressure evidence.
    """

    segment_id: str
    bias_m3h: float = 0.0  # the balance's mean in normal operation (meter calibration offsets)
    sigma_m3h: float = 5.0  # its spread at one-minute resolution after compensation
    drift_m3h: float = 1.0  # reference value k: shifts smaller than this are not accumulated
    limit: float = 6.0  # decision limit of the statistic named by ``method``
    extra: dict[str, float] = field(default_factory=dict)
    method: str = "windows"
    windows: tuple[int, ...] = DEFAULT_WINDOWS
    window_sigma_m3: tuple[float, ...] = field(default_factory=lambda: default_window_sigma(DEFAULT_WINDOWS))
    skew_gain: float = 0.0
    skew_gain_lag1: float = 0.0
    skew_gain_lead1: float = 0.0  # non-zero: each minute is settled one minute later
    skew_gain_lead2: float = 0.0
    pressure_weight: float = 0.0  # 0 = balance alone; >0 fuses the upstream pressure residual
    pressure_sigma_bar: float = 0.25  # spread of the pressure residual's short mean in normal operation
    drop_full_bar_per_m3h: float = 0.1  # pressure drop per m3/h of tap at the upstream station
    # Expected upstream head on [1, r, r Qn, r d Qn, r d^2 Qn] (see detector/line/pressure.py); empty:
    # no pressure model (the pressure evidence and the location stay off).
    pressure_coef: tuple[float, ...] = ()
    # Normal spread (bar) of the pressure residual's local step over each of pressure.STEP_MINUTES;
    # empty: the pressure evidence is the drop against the offset (``pressure_sigma_bar``).
    pressure_step_sigma_bar: tuple[float, ...] = ()
    # The step counts only as far as the drop against the slow offset confirms it (in bar).
    pressure_step_confirm: bool = False
    # The pressure's share in the fused z is capped at this many sigma, and it counts only where the
    # balance's own z exceeds ``pressure_gate`` (the balance must agree in sign).
    pressure_cap: float = 4.0
    pressure_gate: float = -math.inf
    # Added to the fused z: the balance's limit less the pressure test's own (see segment.py).
    pressure_shift: float = 0.0

    def __post_init__(self) -> None:
        if len(self.windows) != len(self.window_sigma_m3) or not self.windows:
            raise BundleError(f"segment {self.segment_id}: windows and window_sigma_m3 differ in length")
        if self.pressure_step_sigma_bar and min(self.pressure_step_sigma_bar) <= 0:
            raise BundleError(f"segment {self.segment_id}: pressure_step_sigma_bar must be positive")
        if self.method not in ("windows", "cusum"):
            raise BundleError(f"segment {self.segment_id}: method {self.method!r} is not windows or cusum")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["windows"] = list(self.windows)
        data["window_sigma_m3"] = list(self.window_sigma_m3)
        data["pressure_coef"] = list(self.pressure_coef)
        data["pressure_step_sigma_bar"] = list(self.pressure_step_sigma_bar)
        # JSON has no infinity: an absent gate is written as null.
        data["pressure_gate"] = None if math.isinf(self.pressure_gate) else self.pressure_gate
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentCalibration:
        try:
            windows = tuple(int(w) for w in data.get("windows", DEFAULT_WINDOWS))
            sigma = data.get("window_sigma_m3")
            defaults = cls(segment_id=str(data["segment_id"]))
            return cls(
                segment_id=str(data["segment_id"]),
                bias_m3h=float(data["bias_m3h"]),
                sigma_m3h=float(data["sigma_m3h"]),
                drift_m3h=float(data["drift_m3h"]),
                limit=float(data["limit"]),
                extra={str(k): float(v) for k, v in dict(data.get("extra", {})).items()},
                method=str(data.get("method", "windows")),
                windows=windows,
                window_sigma_m3=tuple(float(s) for s in sigma)
                if sigma is not None
                else default_window_sigma(windows),
                skew_gain=float(data.get("skew_gain", 0.0)),
                skew_gain_lag1=float(data.get("skew_gain_lag1", 0.0)),
                skew_gain_lead1=float(data.get("skew_gain_lead1", 0.0)),
                skew_gain_lead2=float(data.get("skew_gain_lead2", 0.0)),
                pressure_weight=float(data.get("pressure_weight", 0.0)),
                pressure_sigma_bar=float(data.get("pressure_sigma_bar", defaults.pressure_sigma_bar)),
                drop_full_bar_per_m3h=float(
                    data.get("drop_full_bar_per_m3h", defaults.drop_full_bar_per_m3h)
                ),
                pressure_coef=tuple(float(c) for c in data.get("pressure_coef", ())),
                pressure_step_sigma_bar=tuple(float(s) for s in data.get("pressure_step_sigma_bar", ())),
                pressure_step_confirm=bool(data.get("pressure_step_confirm", False)),
                pressure_cap=float(data.get("pressure_cap", defaults.pressure_cap)),
                pressure_shift=float(data.get("pressure_shift", 0.0)),
                pressure_gate=-math.inf
                if data.get("pressure_gate") is None
                else float(data["pressure_gate"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"segment calibration is malformed: {error!r}") from error


@dataclass(frozen=True, slots=True)
class LineCalibration:
    """Every segment's calibration plus how it was chosen (budget, training span)."""

    segments: dict[str, SegmentCalibration]
    budget_per_segment_month: float = 1.0
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "budget_per_segment_month": self.budget_per_segment_month,
            "segments": {name: segment.to_dict() for name, segment in sorted(self.segments.items())},
            "record": self.record,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineCalibration:
        if data.get("format") != CALIBRATION_FORMAT:
            raise BundleError(f"line calibration format {data.get('format')!r} is not {CALIBRATION_FORMAT}")
        try:
            segments = {str(k): SegmentCalibration.from_dict(v) for k, v in dict(data["segments"]).items()}
            return cls(segments, float(data["budget_per_segment_month"]), dict(data.get("record", {})))
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"line calibration is malformed: {error!r}") from error

    def segment(self, segment_id: str) -> SegmentCalibration:
        """This segment's calibration, or the untrained defaults when the segment was not calibrated."""
        return self.segments.get(segment_id) or SegmentCalibration(segment_id)
