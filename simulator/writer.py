"""Write a simulation as readings.csv, events.csv, scenario.json, topology.toml: same result, same bytes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError, DataError
from simulator import csv_bytes
from simulator.linepack import line_pack_record
from simulator.result import EVENTS_COLUMNS, READINGS_COLUMNS, SimulationResult
from simulator.scenario import SENSORS, scenario_json

Layout = Literal["multi", "original"]
LAYOUTS: tuple[str, ...] = ("multi", "original")
ORIGINAL_SENSORS: tuple[str, ...] = ("flow", "pressure", "pump_rpm", "tank_level", "power")
ORIGINAL_COLUMNS: tuple[str, ...] = ("timestamp", *ORIGINAL_SENSORS, "label")
CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class WrittenFiles:
    readings: Path
    events: Path
    scenario: Path
    rows: int
    topology: Path | None = None  # None for the original layout or a one-station line


def default_original_station(result: SimulationResult) -> int:
    """The second station when there is one: it sees taps on the segments on both sides of it."""
    return min(1, len(result.station_ids) - 1)


def write_outputs(
    result: SimulationResult,
    out_dir: Path,
    *,
    layout: Layout = "multi",
    station: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> WrittenFiles:
    """Write the files into ``out_dir`` (created if missing); returns their paths.

    ``topology.toml`` (``SimulationResult.topology``) is written for the multi layout of a line of
    two stations or more; the original layout is one station, which a topology cannot describe.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        readings_path = out_dir / "readings.csv"
        if layout == "multi":
            rows = _write_multi(result, readings_path, progress)
        else:
            index = default_original_station(result) if station is None else _station_index(result, station)
            rows = _write_original(result, index, readings_path, progress)
        events_path = out_dir / "events.csv"
        _atomic_write(events_path, events_csv(result).encode())
        scenario_path = out_dir / "scenario.json"
        summary = events_by_type(result)
        line = result.line.to_json()
        line["line_pack"] = {
            **line_pack_record(result.config, result.line),
            "largest_gap_asked_vs_final_m3h": round(result.line_pack_residual_m3h, 6),
        }
        line["clock_offset_s"] = clock_record(result)
        document = scenario_json(result.config, line, summary)
        _atomic_write(scenario_path, document.encode())
        topology_path: Path | None = None
        if layout == "multi" and len(result.station_ids) >= 2:
            topology_path = out_dir / "topology.toml"
            _atomic_write(topology_path, result.topology().to_toml().encode())
    except OSError as error:
        raise DataError(f"cannot write simulation output to {out_dir}: {error}") from error
    return WrittenFiles(readings_path, events_path, scenario_path, rows, topology_path)


def clock_record(result: SimulationResult) -> dict[str, list[int]]:
    """Each station's clock offset in seconds, its first, smallest and largest (scenario.json)."""
    offsets = result.clock_offset_s
    if not len(offsets):
        return {"first": [], "min": [], "max": []}
    return {
        "first": [int(v) for v in offsets[0]],
        "min": [int(v) for v in offsets.min(axis=0)],
        "max": [int(v) for v in offsets.max(axis=0)],
    }


def _station_index(result: SimulationResult, station: str) -> int:
    if station not in result.station_ids:
        raise ConfigError(f"unknown station {station!r}; stations: {', '.join(result.station_ids)}")
    return result.station_ids.index(station)


def _atomic_write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _timestamps(times: npt.NDArray[np.datetime64], style: str) -> csv_bytes.Field:
    text = np.datetime_as_string(times, unit="s")
    raw = np.char.add(text, "Z") if style == "rfc3339" else np.char.replace(text, "T", " ")
    width = len(raw[0]) if len(raw) else 1
    chars = np.frombuffer("".join(raw.tolist()).encode("ascii"), dtype=np.uint8).reshape(len(raw), width)
    return csv_bytes.Field(chars, np.ones_like(chars, dtype=bool))


class _SkewedStamps:
    """RFC 3339 stamps ``times[t] + offset[t, j]`` seconds for every row, without formatting each.

    Offsets are whole seconds, so a stamp is a minute's text (some minute near ``t``) with its two
    second digits replaced: the minutes are formatted once, the rows are a gather and two digits.
    """

    SECONDS_AT = 17  # "YYYY-MM-DDTHH:MM:SSZ": the seconds' two digits

    def __init__(self, times: npt.NDArray[np.datetime64], offsets: npt.NDArray[np.int32]) -> None:
        self._shift = offsets.astype(np.int64) // 60  # whole minutes each stamp moves, floor
        self._second = (offsets.astype(np.int64) % 60).astype(np.uint8)
        self._low = int(self._shift.min()) if self._shift.size else 0
        high = int(self._shift.max()) if self._shift.size else 0
        step = np.timedelta64(1, "m")
        first = times[0] + self._low * step if len(times) else times
        span = np.arange(len(times) + high - self._low) * step
        self._minutes = _timestamps(np.asarray(first + span), "rfc3339").chars

    def rows(self, span: slice) -> csv_bytes.Field:
        """Time-major stamps of every station for the minutes in ``span``."""
        start = span.start or 0
        minute = np.arange(start, span.stop)[:, None] + self._shift[span] - self._low
        chars = self._minutes[minute.reshape(-1)].copy()
        second = self._second[span].reshape(-1)
        chars[:, self.SECONDS_AT] = second // 10 + ord("0")
        chars[:, self.SECONDS_AT + 1] = second % 10 + ord("0")
        return csv_bytes.Field(chars, np.ones_like(chars, dtype=bool))


def _write_multi(result: SimulationResult, path: Path, progress: Callable[[float], None] | None) -> int:
    minutes, n = result.present.shape
    stamps = _SkewedStamps(result.times, result.clock_offset_s)
    station_codes = np.arange(n)
    event_types = [event.event_type for event in result.events] + [""]
    event_ids = [event.event_id for event in result.events] + [""]
    decimals = {sensor: result.config.noise[sensor].decimals for sensor in SENSORS}
    chunk_minutes = max(1, CHUNK_ROWS // n)
    rows = 0
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        handle.write((",".join(READINGS_COLUMNS) + "\n").encode())
        for first in range(0, minutes, chunk_minutes):
            last = min(first + chunk_minutes, minutes)
            span = slice(first, last)
            fields = [
                stamps.rows(span),
                csv_bytes.vocabulary(np.tile(station_codes, last - first), result.station_ids),
            ]
            for sensor in SENSORS:
                fields.append(csv_bytes.numbers(result.readings[sensor][span].reshape(-1), decimals[sensor]))
            fields.append(csv_bytes.vocabulary(result.label[span].reshape(-1), ["0", "1"]))
            codes = result.event_index[span].reshape(-1)
            fields.append(csv_bytes.vocabulary(codes, event_types))
            fields.append(csv_bytes.vocabulary(codes, event_ids))
            keep = result.present[span].reshape(-1)
            handle.write(csv_bytes.join_row(fields, keep))
            rows += int(keep.sum())
            if progress is not None:
                progress(last / minutes)
    os.replace(partial, path)
    return rows


def _write_original(
    result: SimulationResult, station: int, path: Path, progress: Callable[[float], None] | None
) -> int:
    stamps = _timestamps(result.times, "original")
    fields = [stamps]
    for sensor in ORIGINAL_SENSORS:
        fields.append(
            csv_bytes.numbers(result.readings[sensor][:, station], result.config.noise[sensor].decimals)
        )
    fields.append(csv_bytes.vocabulary(result.label[:, station], ["0.0", "1.0"]))
    keep = result.present[:, station]
    body = (",".join(ORIGINAL_COLUMNS) + "\n").encode() + csv_bytes.join_row(fields, keep)
    _atomic_write(path, body)
    if progress is not None:
        progress(1.0)
    return int(keep.sum())


def events_csv(result: SimulationResult) -> str:
    """events.csv text: times in RFC 3339 UTC, fixed decimals, so it is byte-stable."""
    frame = result.events_frame()
    frame["start"] = frame["start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["end"] = frame["end"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["magnitude"] = frame["magnitude"].map(lambda v: f"{v:.6f}")
    frame["position"] = frame["position"].map(lambda v: "" if np.isnan(v) else f"{v:.4f}")
    frame["volume_m3"] = frame["volume_m3"].map(lambda v: f"{v:.3f}")
    text: str = frame.to_csv(index=False, columns=list(EVENTS_COLUMNS), lineterminator="\n")
    return text


def events_by_type(result: SimulationResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in result.events:
        key = event.event_type if event.event_type != "transient" else f"transient:{event.subtype}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
