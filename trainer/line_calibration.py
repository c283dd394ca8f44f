"""Calibrate each declared segment's sequential test on the training period (STUB: the interface;
the calibration itself is being built beside detector/line/)."""

from __future__ import annotations

import pandas as pd

from detector.line.calibration import LineCalibration, SegmentCalibration
from detector.topology import Topology


def calibrate_line(
    frame: pd.DataFrame,
    topology: Topology,
    *,
    budget_per_segment_month: float = 1.0,
    exclude: pd.Series | None = None,
) -> LineCalibration:
    """Thresholds for every segment of ``topology`` from normal history.

    ``frame``: one row per station and minute, columns ``timestamp`` (tz-aware UTC), ``station_id``
    and the reading fields the topology uses (empty cells = missing). ``exclude``: a boolean Series
    aligned with ``frame``, True on rows known not to be normal (labelled events); those minutes
    (and the recovery after them) do not count towards the false-alarm budget.
    """
    del frame, exclude
    return LineCalibration(
        {segment.segment_id: SegmentCalibration(segment.segment_id) for segment in topology.segments},
        budget_per_segment_month,
    )
