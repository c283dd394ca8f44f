"""Helpers for the service's tests and benchmarks: synthetic readings and the offline reference.

``offline_alerts`` is what "the alerts match the offline scoring of the same bundle on the same data"
means: ``batch_windows`` over each station's whole series, one ``Bundle.score``, the same incident
tracker, no Kafka. The live service must publish exactly these alerts (same ids), window for window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import orjson

from detector.bundle import Bundle
from detector.incidents import Alert, IncidentPolicy, IncidentTracker, WindowVerdict
from detector.readings import format_ts
from detector.testing import SEED_MEAN, SEED_SCALE
from detector.windows import batch_windows

START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Series:
    """One station's readings: event times and an ``(n, S)`` array of values in sensor order."""

    station_id: str
    ts: list[datetime]
    values: npt.NDArray[np.float64]

    def messages(self, sensors: Sequence[str]) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` wire messages, in time order."""
        key = self.station_id.encode()
        out = []
        for stamp, row in zip(self.ts, self.values.tolist(), strict=True):
            body: dict[str, object] = {"station_id": self.station_id, "ts": format_ts(stamp)}
            body.update(zip(sensors, row, strict=True))
            out.append((key, orjson.dumps(body)))
        return out


def normal_series(
    station_id: str,
    minutes: int,
    *,
    seed: int = 0,
    start: datetime = START,
    anomalies: Iterable[tuple[int, int, int, float]] = (),
) -> Series:
    """One-minute readings around the seed data set's means; each anomaly is
    ``(first_minute, last_minute, sensor_index, shift_in_sigmas)``."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(SEED_MEAN)
    scale = np.asarray(SEED_SCALE)
    values = mean + rng.standard_normal((minutes, len(mean))) * scale
    for first, last, sensor, shift in anomalies:
        values[first : last + 1, sensor] += shift * scale[sensor]
    ts = [start + timedelta(minutes=i) for i in range(minutes)]
    return Series(station_id, ts, values)


def interleave(series: Sequence[Series], sensors: Sequence[str]) -> list[tuple[bytes, bytes]]:
    """All stations' messages merged in event-time order (as a live feed would deliver them)."""
    tagged = []
    for item in series:
        for stamp, message in zip(item.ts, item.messages(sensors), strict=True):
            tagged.append((stamp, item.station_id, message))
    tagged.sort(key=lambda entry: (entry[0], entry[1]))
    return [message for _stamp, _station, message in tagged]


def offline_alerts(
    bundle: Bundle, series: Iterable[Series], policy: IncidentPolicy | None = None
) -> list[Alert]:
    """The alerts an offline run of ``bundle`` gives on each station's series (see the module docstring)."""
    spec = bundle.window_spec
    tracker = IncidentTracker(policy)
    alerts: list[Alert] = []
    for item in series:
        stamps = np.asarray([stamp.replace(tzinfo=None) for stamp in item.ts], dtype="datetime64[ns]")
        batch = batch_windows(stamps, item.values, spec)
        scored = bundle.score([item.station_id] * len(batch.data), batch.data)
        events: list[tuple[datetime, int, str | None]] = []
        for index, end in enumerate(batch.ends.astype("datetime64[us]").tolist()):
            events.append((end.replace(tzinfo=UTC), index, None))
        for skipped in batch.skipped:
            events.append((skipped.end, -1, skipped.reason))
        events.sort(key=lambda event: event[0])
        for end, index, reason in events:
            window = WindowVerdict(
                item.station_id,
                end - spec.length,
                end,
                bundle.threshold_for(item.station_id),
                bundle.model_version,
            )
            if reason is None:
                shares = dict(zip(bundle.sensors, scored.contributions[index].tolist(), strict=True))
                alerts += tracker.observe(
                    replace(window, score=float(scored.scores[index]), contributions=shares)
                )
            else:
                alerts += tracker.gap(window, reason)
    return alerts


def alert_ids(alerts: Iterable[Alert | Mapping[str, object]]) -> list[str]:
    """Sorted alert ids, from ``Alert`` objects or decoded JSON."""
    ids = [str(a.alert_id if isinstance(a, Alert) else a["alert_id"]) for a in alerts]
    return sorted(ids)
