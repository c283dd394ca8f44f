"""The line monitor over a whole history at once: the oracle live runs are compared with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from detector.incidents import Alert
from detector.line.calibration import LineCalibration
from detector.line.monitor import LineMonitor
from detector.topology import Topology


def line_alerts(
    readings: Iterable[tuple[str, datetime, Mapping[str, float]]],
    topology: Topology,
    calibration: LineCalibration,
    *,
    model_version: str,
    lateness_minutes: int | None = None,
) -> list[Alert]:
    """Every segment alert a live monitor raises for ``readings`` (station, ts, values), fed in order.

    Each line's lateness follows the topology's ``clock_tolerance_s``, as the live monitor's does
    (``lateness_minutes`` overrides it, for studies only).
    """
    monitor = LineMonitor(
        topology, calibration, model_version=model_version, lateness_minutes=lateness_minutes
    )
    alerts: list[Alert] = []
    for station_id, ts, values in readings:
        monitor.add(station_id, ts, values)
        alerts.extend(monitor.advance())
    alerts.extend(monitor.flush())
    return alerts
