"""The upstream discharge-pressure evidence of a segment (first version: held at zero).

A tap at fraction ``x`` along the segment lowers the upstream discharge pressure at once by about
``friction * n * (q / Q) * (1 - x)``; this module will track the expected pressure and turn the
residual's drop into a z-score and a location. Until then it reports nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.line.calibration import SegmentCalibration
from detector.topology import Segment


class PressureTrack:
    """Expected upstream discharge pressure and the drop against it (stateless placeholder)."""

    def __init__(self, segment: Segment, calibration: SegmentCalibration) -> None:
        self.segment = segment
        self.cal = calibration

    def step(
        self,
        minute: int,
        up: Mapping[str, float] | None,
        down: Mapping[str, float] | None,
        flow_up: float,
        usable: bool,
        *,
        frozen: bool,
    ) -> float:
        del minute, up, down, flow_up, usable, frozen
        return 0.0

    def restart(self) -> None:
        return None

    def freeze(self, onset: int) -> None:
        del onset

    def release(self) -> None:
        return None

    def location(self) -> tuple[float, float] | None:
        return None

    def evidence(self) -> dict[str, float]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {}

    def restore(self, data: Mapping[str, Any]) -> None:
        del data
