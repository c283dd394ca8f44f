"""What a simulation returns: the readings grid, the ground truth, the events, as arrays and frames."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from detector.errors import ConfigError
from detector.topology import TOPOLOGY_FORMAT, Topology
from simulator.clock import as_read
from simulator.event import Event
from simulator.line import Line
from simulator.scenario import SENSORS, SimulationConfig

Array = npt.NDArray[np.float64]

DEFAULT_LINE_ID = "L1"
# What a user would write for a products line without knowing the batch in it: a round mid-range
# product modulus, no wall term. The simulation's own K_eff (0.87-1.17 GPa) is in scenario.json.
DECLARED_BULK_MODULUS_GPA = 1.3

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
    # Line pack (see linepack.py): the rate each segment packed at, m3/h (T, N), zero with it off;
    # its capacity per bar of mean pressure for the product filling it (T, N); its true mean
    # pressure, halfway between its inlet (after the discharge valve) and its arrival (T, N), bar.
    pack_m3h: Array
    pack_capacity_m3_per_bar: Array
    segment_mean_bar: Array
    # Station clocks (see clock.py): row t of station j is stamped t + clock_offset_s[t, j] seconds.
    clock_offset_s: npt.NDArray[np.int32]
    products: list[str] = field(default_factory=list)
    # Largest gap, any segment and minute, between the pack the cascade asked for and what the final
    # pressures ask for (linepack.py: the arrival's level is the minute's start); m3/h.
    line_pack_residual_m3h: float = 0.0

    @property
    def station_ids(self) -> tuple[str, ...]:
        return self.line.station_ids

    @property
    def stamps(self) -> npt.NDArray[np.datetime64]:
        """(T, N) each row's timestamp as its station's clock wrote it (``clock.py``), datetime64[ns]."""
        skew = self.clock_offset_s.astype("timedelta64[s]").astype("timedelta64[ns]")
        return np.asarray(self.times[:, None] + skew)

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
        """Readings in the long layout of readings.csv: one row per station and minute, time-major.

        Rows follow the true minute; ``timestamp`` is the station clock's stamp (``stamps``), so
        stamps of different stations within a minute need not be in order.
        """
        minutes, n = self.present.shape
        keep = self.present.reshape(-1)
        # Categoricals built from codes: no per-row Python strings for 4 M rows.
        event_codes = self.event_index.reshape(-1)[keep]
        event_codes = np.where(event_codes < 0, len(self.events), event_codes)
        type_names = list(dict.fromkeys([e.event_type for e in self.events] + [""]))
        type_codes = np.array([type_names.index(e.event_type) for e in self.events] + [type_names.index("")])
        station_codes = np.tile(np.arange(n), minutes)[keep]
        data: dict[str, Any] = {
            "timestamp": pd.DatetimeIndex(self.stamps.reshape(-1)[keep], tz="UTC"),
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
        """One station's readings (present rows only), indexed by the timestamp its clock wrote."""
        j = self.station_ids.index(station) if isinstance(station, str) else station
        keep = self.present[:, j]
        data: dict[str, Any] = {sensor: self.readings[sensor][keep, j] for sensor in SENSORS}
        data["label"] = self.label[keep, j]
        index = pd.DatetimeIndex(self.stamps[keep, j], tz="UTC", name="timestamp")
        return pd.DataFrame(data, index=index)

    def segment_imbalance(
        self,
        segment: int,
        *,
        truth: bool = False,
        compensated: bool = True,
        line_pack: bool = False,
        stamped: bool = False,
    ) -> Array:
        """Flow into a segment minus flow out of it, m3/h, per minute.

        ``compensated`` subtracts the downstream tank's change of inventory (its level change times
        its area). ``line_pack`` also subtracts what the segment itself packed: on the truth, the rate
        it really packed at, so ``truth=True, line_pack=True`` equals the extraction every minute; on
        readings, the estimate a detector with the exact K_eff (``pack_capacity_m3_per_bar``) would
        make from the transmitters: capacity times the change of the mean of the upstream discharge
        pressure and the downstream suction pressure. That estimate is off where a discharge valve
        throttles (the transmitter sits upstream of the valve) and in the minute or two a segment
        takes to pack after a restart. Without ``line_pack`` the balance moves by the segment's pack
        whenever its pressure moves (pump stops, restarts, set-point changes).

        ``stamped`` places each station's values where a reader snapping the skewed timestamps to the
        nearest minute would (``clock.as_read``) instead of at their true minute; the pack term is
        then the transmitters' estimate even on the truth (what the segment packed is in true time).
        Missing rows (``present``) are not masked. On measured levels the per-minute compensation is
        noisy; average it over 30-60 minutes.
        """
        source = self.truth if truth else self.readings

        def series(sensor: str, station: int) -> Array:
            values = source[sensor][:, station : station + 1]
            if stamped:
                values = as_read(values, self.clock_offset_s[:, station : station + 1])
            return np.asarray(values[:, 0], dtype=np.float64)

        balance = series("flow", segment) - series("flow", segment + 1)
        if compensated:
            level = series("tank_level", segment + 1)
            balance = balance - np.diff(level, prepend=level[0]) * self.line.tank_area * 60.0
        if line_pack:
            if truth and not stamped:
                balance = balance - self.pack_m3h[:, segment]
            else:
                mean_bar = 0.5 * (series("pressure", segment) + series("suction_pressure", segment + 1))
                change = np.diff(mean_bar, prepend=mean_bar[0])
                balance = balance - self.pack_capacity_m3_per_bar[:, segment] * change * 60.0
        return np.asarray(balance, dtype=np.float64)

    @property
    def clock_tolerance_s(self) -> float:
        """The largest offset between two stations' clocks this simulation can draw, in seconds.

        ``simulator.clock`` clips each offset (fixed error plus wander) to ``±clock_skew_s`` before
        rounding it to whole seconds, so no wander margin is needed: two clocks sit at most
        ``2 × ceil(clock_skew_s)`` apart (the default 45 s gives 90, the topology's default).
        """
        return float(2 * math.ceil(self.config.clock_skew_s))

    def topology(self, line_id: str = DEFAULT_LINE_ID) -> Topology:
        """The line as a user would declare it (``detector.topology``), written as topology.toml.

        Stations in flow order with the line's tank area; a segment between each pair of neighbours
        (the last segment, to the terminal, has no downstream meter and is left out); lengths to the
        metre; the pipe's inner diameter; ``bulk_modulus_gpa`` the nominal product modulus a user
        would declare (``DECLARED_BULK_MODULUS_GPA``), deliberately not the exact K_eff the
        simulation used (that is in scenario.json); ``clock_tolerance_s`` the widest offset two of
        its clocks can take (``clock_tolerance_s`` below). Needs two stations at least.
        """
        ids = self.station_ids
        if len(ids) < 2:
            raise ConfigError("a topology needs a line of two stations at least; this one has one")
        stations = [{"id": station, "tank_area_m2": float(self.line.tank_area)} for station in ids]
        segments = [
            {
                "upstream": ids[j],
                "downstream": ids[j + 1],
                "length_km": round(float(self.line.segment_km[j]), 3),
                "inner_diameter_m": self.config.pipe_diameter_m,
                "bulk_modulus_gpa": DECLARED_BULK_MODULUS_GPA,
            }
            for j in range(len(ids) - 1)
        ]
        line = {
            "id": line_id,
            "clock_tolerance_s": self.clock_tolerance_s,
            "station": stations,
            "segment": segments,
        }
        document = {"format": TOPOLOGY_FORMAT, "line": [line]}
        return Topology.from_dict(document, where="simulated topology")
