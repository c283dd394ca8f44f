"""What the trainer learns per segment, as plain data (it travels in the bundle's manifest)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from detector.errors import BundleError

CALIBRATION_FORMAT = 1


@dataclass(frozen=True, slots=True)
class SegmentCalibration:
    """One segment's noise level and sequential-test limits, learned on the training period."""

    segment_id: str
    bias_m3h: float = 0.0  # the balance's mean in normal operation (meter calibration offsets)
    sigma_m3h: float = 5.0  # its spread at one-minute resolution after compensation
    drift_m3h: float = 2.5  # CUSUM reference value k: shifts smaller than this are not accumulated
    limit: float = 60.0  # CUSUM decision limit h, in m3 (the statistic integrates m3/h over hours)
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentCalibration:
        try:
            return cls(
                segment_id=str(data["segment_id"]),
                bias_m3h=float(data["bias_m3h"]),
                sigma_m3h=float(data["sigma_m3h"]),
                drift_m3h=float(data["drift_m3h"]),
                limit=float(data["limit"]),
                extra={str(k): float(v) for k, v in dict(data.get("extra", {})).items()},
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
