"""Line-aware detection: each declared segment's compensated balance, meter checks and sequential test.

The public surface (used by the trainer, the service and the evaluation):

- ``LineCalibration`` / ``SegmentCalibration``: plain data the trainer writes into the bundle.
- ``LineMonitor``: streaming state for every segment of a topology. Feed readings with ``add`` (any
  order within the lateness), call ``advance`` to evaluate every minute that is complete, get
  alerts (``detector.incidents.Alert`` with ``kind`` tap / meter_fault) back; ``snapshot`` /
  ``restore`` carry the state to another instance.
"""

from __future__ import annotations

from detector.line.calibration import LineCalibration, SegmentCalibration
from detector.line.monitor import LineMonitor, SegmentView

__all__ = ["LineCalibration", "LineMonitor", "SegmentCalibration", "SegmentView"]
