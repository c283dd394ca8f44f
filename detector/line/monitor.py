"""Streaming segment state (STUB: the interface every caller codes against; the detection inside is
being built in detector/line/ and replaces this body, not its signatures)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from detector.incidents import Alert
from detector.line.calibration import LineCalibration
from detector.topology import Topology

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class SegmentView:
    """What the scrape shows of one segment."""

    segment_id: str
    line_id: str
    balance_m3h: float | None  # latest compensated balance (minute)
    statistic: float | None  # sequential test statistic
    limit: float | None
    degraded: str | None  # why the balance is held (a meter fault, a silent station), or None
    incident_open: bool


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LineMonitor:
    """Every segment of ``topology``; one instance per line owner (the service keys work by line).

    - ``add(station_id, ts, values)``: one reading (values keyed by reading field); stations the
      topology does not know are ignored (returns False). Duplicates and readings older than the
      lateness are dropped (returns False).
    - ``advance()``: evaluates every minute that all stations of a segment have reported, or that
      the line's watermark (newest minute seen minus ``lateness_minutes``) has passed; returns the
      alerts those minutes cause, in event-time order.
    - ``snapshot()`` / ``restore()``: plain JSON-able state, so another instance continues exactly.
    """

    def __init__(
        self,
        topology: Topology,
        calibration: LineCalibration,
        *,
        model_version: str,
        lateness_minutes: int = 2,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.topology = topology
        self.calibration = calibration
        self.model_version = model_version
        self.lateness_minutes = lateness_minutes
        self._clock = clock

    def add(self, station_id: str, ts: datetime, values: Mapping[str, float]) -> bool:
        return self.topology.line_of(station_id) is not None

    def advance(self) -> list[Alert]:
        return []

    def flush(self) -> list[Alert]:
        """End of input (offline runs): evaluate every minute still waiting for a late station."""
        return []

    def open_incidents(self) -> int:
        return 0

    def open_taps(self) -> Iterator[tuple[str, str, str]]:
        """(incident_id, upstream, downstream) of every open tap incident, for linking."""
        return iter(())

    def views(self) -> Iterator[SegmentView]:
        return iter(())

    def snapshot(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "segments": {}}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        return None
