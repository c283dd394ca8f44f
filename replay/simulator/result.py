"""What a simulation returns: the readings grid, the ground truth, the events, as arrays and frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from replay.simulator.event import Event
from replay.simulator.line import Line
from replay.simulator.scenario import SENSORS, SimulationConfig

Array = npt.NDArray[np.float64]

READINGS_COLUMNS: tuple[str, ...] = ("timestamp", "station_id", *SENSORS, "label", "event_type", "event_id")
EVENTS_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "subtype",
    "label",
    "segment",
    "station_id",
    "stations",
    "sensor",
    "start",
    "end",
    "minutes",
    "magnitude",
    "unit",
    "position",
    "volume_m3",
)


@dataclass(frozen=True)
class SimulationResult:
    """Arrays are ``(minutes, stations)``; ``present`` False marks a missing row, NaN an empty cell."""

    config: SimulationConfig
    line: Line
    times: npt.NDArray[np.datetime64]  # (T,) datetime64[ns], UTC
    readings: dict[str, Array]
    truth: dict[str, Array]
    present: npt.NDArray[np.bool_]
    label: npt.NDArray[np.int8]
    event_index: npt.NDArray[np.int32]
    events: list[Event]
    extraction_m3h: Array  # (T, N) true rate taken out of each segment
    products: list[str] = field(default_factory=list)

    @property
    def station_ids(self) -> tuple[str, ...]:
        return self.line.station_ids

    @property
    def rows(self) -> int:
        return int(self.present.sum())

    def segment_name(self, segment: int) -> str:
        ids = self.station_ids
        return f"{ids[segment]}>{ids[segment + 1] if segment + 1 < len(ids) else 'TERMINAL'}"

    def event_volume_m3(self, event: Event) -> float:
        if event.segment is None or event.event_type not in ("theft", "leak"):
            return 0.0
        return float(self.extraction_m3h[event.start : event.end, event.segment].sum() / 60.0)

    def events_frame(self) -> pd.DataFrame:
        """One row per event, the columns of events.csv (times as aware UTC timestamps)."""
        times = pd.DatetimeIndex(self.times, tz="UTC")
        step = pd.Timedelta(minutes=1)
        end_of_data = times[-1] + step if len(times) else pd.Timestamp(self.config.start)
        rows: list[dict[str, Any]] = []
        for event in self.events:
            rows.append(
                {
                    "event_id": event.event_id,
                    "event_type": event.event_type,
                    "subtype": event.subtype,
                    "label": event.label,
                    "segment": self.segment_name(event.segment) if event.segment is not None else "",
                    "station_id": self.station_ids[event.station] if event.station is not None else "",
                    "stations": " ".join(self.station_ids[j] for j in event.stations),
                    "sensor": event.sensor,
                    "start": times[event.start],
                    "end": times[event.end] if event.end < len(times) else end_of_data,
                    "minutes": event.end - event.start,
                    "magnitude": event.magnitude,
                    "unit": event.unit,
                    "position": event.position if event.position is not None else np.nan,
                    "volume_m3": self.event_volume_m3(event),
                }
            )
        frame = pd.DataFrame(rows, columns=list(EVENTS_COLUMNS))
        for column in ("start", "end"):  # typed even when there are no events
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    @cached_property
    def frame(self) -> pd.DataFrame:
        """Readings in the long layout of readings.csv: one row per station and minute, time-major."""
        minutes, n = self.present.shape
        keep = self.present.reshape(-1)
        # Categoricals built from codes: no per-row Python strings for 4 M rows.
        event_codes = self.event_index.reshape(-1)[keep]
        event_codes = np.where(event_codes < 0, len(self.events), event_codes)
        type_names = list(dict.fromkeys([e.event_type for e in self.events] + [""]))
        type_codes = np.array([type_names.index(e.event_type) for e in self.events] + [type_names.index("")])
        station_codes = np.tile(np.arange(n), minutes)[keep]
        data: dict[str, Any] = {
            "timestamp": pd.DatetimeIndex(np.repeat(self.times, n)[keep], tz="UTC"),
            "station_id": pd.Categorical.from_codes(
                station_codes, categories=pd.Index(list(self.station_ids))
            ),
        }
        for sensor in SENSORS:
            data[sensor] = self.readings[sensor].reshape(-1)[keep]
        data["label"] = self.label.reshape(-1)[keep]
        data["event_type"] = pd.Categorical.from_codes(
            type_codes[event_codes], categories=pd.Index(type_names)
        )
        ids = [e.event_id for e in self.events] + [""]
        data["event_id"] = pd.Categorical.from_codes(event_codes, categories=pd.Index(ids))
        return pd.DataFrame(data)

    def station_frame(self, station: int | str) -> pd.DataFrame:
        """One station's readings (present rows only), indexed by timestamp."""
        j = self.station_ids.index(station) if isinstance(station, str) else station
        keep = self.present[:, j]
        data: dict[str, Any] = {sensor: self.readings[sensor][keep, j] for sensor in SENSORS}
        data["label"] = self.label[keep, j]
        index = pd.DatetimeIndex(self.times[keep], tz="UTC", name="timestamp")
        return pd.DataFrame(data, index=index)

    def segment_imbalance(self, segment: int, *, truth: bool = False, compensated: bool = True) -> Array:
        """Flow into a segment minus flow out of it, m3/h, per minute.

        ``compensated`` adds the downstream tank's change of inventory (its level change times its
        area): with it the balance closes exactly on the true values, so on noise-free data it equals
        the extraction. On measured levels the per-minute term is noisy; average it over 30–60 min.
        """
        source = self.truth if truth else self.readings
        upstream = source["flow"][:, segment]
        downstream = source["flow"][:, segment + 1]
        balance = upstream - downstream
        if compensated:
            level = source["tank_level"][:, segment + 1]
            change = np.diff(level, prepend=level[0]) * self.line.tank_area * 60.0
            balance = balance - change
        return np.asarray(balance, dtype=np.float64)
