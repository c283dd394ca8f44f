"""Loading labelled history from CSV, with errors that name the file, line and column.

The accepted layout is the original pipeline's (``timestamp``, one column per sensor, ``label``)
plus an optional ``station_id`` column for multi-station history. A file without ``station_id`` is
one station, ``EST-01``. Timestamps without an offset are read as UTC; with one, converted to UTC.

Real plant history is ragged, so:

- an **empty sensor cell** is a missing reading (NaN): the row is a gap for the windowing, exactly as
  a reading the service could not parse (``detector.windows`` fills or skips by the live coverage
  rules). Text that is not a number is still refused, naming the line and column;
- an **empty label** is *unknown* (``UNKNOWN_LABEL``, -1): left out of every metric and of the
  threshold, and of training unless ``--train-on-unlabelled``;
- labels are 0/1 in the ``label`` column by default; ``label_column`` reads another column and
  ``anomaly_values`` maps its values (class codes, words): a listed value is an anomaly (1), any other
  non-empty value normal (0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detector.errors import DataError
from detector.readings import STATION_ID_PATTERN

DEFAULT_STATION = "EST-01"
TIME_COLUMNS = ("timestamp", "ts")
STATION_COLUMN = "station_id"
LABEL_COLUMN = "label"
UNKNOWN_LABEL = -1
# Ground-truth metadata the simulator writes beside the label; never sensors.
METADATA_COLUMNS = ("event_type", "event_id")

_STATION_ID = re.compile(STATION_ID_PATTERN)
# Line 1 is the header, so the first data row is line 2.
_FIRST_DATA_LINE = 2


@dataclass(frozen=True)
class StationSeries:
    """One station's rows in time order: UTC timestamps, raw sensor values (NaN: missing), labels
    (1 anomaly, 0 normal, -1 unknown), CSV lines."""

    station_id: str
    ts: npt.NDArray[np.datetime64]
    values: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int8]
    lines: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, mask: npt.NDArray[np.bool_]) -> StationSeries:
        return StationSeries(
            self.station_id, self.ts[mask], self.values[mask], self.labels[mask], self.lines[mask]
        )


@dataclass(frozen=True)
class Dataset:
    """Labelled history of one or more stations, sensors in a fixed order."""

    source: Path
    sensors: tuple[str, ...]
    stations: dict[str, StationSeries]

    @property
    def n_rows(self) -> int:
        return sum(len(series) for series in self.stations.values())

    @property
    def n_anomalous(self) -> int:
        return int(sum(int((series.labels == 1).sum()) for series in self.stations.values()))

    @property
    def n_unknown(self) -> int:
        return int(sum(int((series.labels == UNKNOWN_LABEL).sum()) for series in self.stations.values()))

    @property
    def n_missing_cells(self) -> int:
        return int(sum(int(np.isnan(series.values).sum()) for series in self.stations.values()))

    def with_sensors(self, sensors: Sequence[str]) -> Dataset:
        """The same rows with only ``sensors`` (a subset, in the given order)."""
        columns = [self.sensors.index(name) for name in sensors]
        return Dataset(
            source=self.source,
            sensors=tuple(sensors),
            stations={
                sid: StationSeries(s.station_id, s.ts, s.values[:, columns], s.labels, s.lines)
                for sid, s in self.stations.items()
            },
        )


def _where(
    path: Path, line: int | None = None, column: str | None = None, header: list[str] | None = None
) -> str:
    parts = [str(path)]
    if line is not None:
        parts.append(f"line {line}")
    if column is not None:
        position = f" (column {header.index(column) + 1})" if header and column in header else ""
        parts.append(f"column {column!r}{position}")
    return ", ".join(parts)


def load_csv(
    path: Path | str,
    sensors: Sequence[str] | None = None,
    default_station: str = DEFAULT_STATION,
    label_column: str = LABEL_COLUMN,
    anomaly_values: Sequence[str] | None = None,
) -> Dataset:
    """Read and validate a labelled CSV; every problem raises ``DataError`` saying where it is.

    ``sensors`` picks and orders the sensor columns; by default every column that is not the time,
    station, label (``label`` and ``label_column``) or event metadata (``event_type``, ``event_id``)
    column is a sensor, in file order. Empty cells: see the module docstring.
    """
    import pandas as pd

    source = Path(path)
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as error:
        raise DataError(f"{source}: no such file") from error
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{source}: cannot be read as CSV: {error}") from error
    header = [str(name) for name in frame.columns]

    time_column = next((name for name in TIME_COLUMNS if name in header), None)
    if time_column is None:
        raise DataError(f"{_where(source, 1)}: missing column 'timestamp' (header: {', '.join(header)})")
    if label_column not in header:
        flag = "" if label_column == LABEL_COLUMN else " (asked for by --label-column)"
        raise DataError(
            f"{_where(source, 1)}: missing column {label_column!r}{flag} (training needs labelled history; "
            "--label-column names another column)"
        )
    reserved = {time_column, STATION_COLUMN, LABEL_COLUMN, label_column, *METADATA_COLUMNS}
    if sensors is None:
        chosen = tuple(name for name in header if name not in reserved)
    else:
        chosen = tuple(sensors)
        for name in chosen:
            if name not in header:
                raise DataError(f"{_where(source, 1)}: missing column {name!r} (asked for by --sensors)")
            if name in reserved:
                raise DataError(f"{_where(source, 1)}: {name!r} is not a sensor column")
    if not chosen:
        raise DataError(f"{_where(source, 1)}: no sensor columns")
    if len(frame) == 0:
        raise DataError(f"{source}: no data rows")

    lines = np.arange(len(frame), dtype=np.int64) + _FIRST_DATA_LINE
    values = np.empty((len(frame), len(chosen)), dtype=np.float64)
    for j, name in enumerate(chosen):
        values[:, j] = _numeric_column(frame[name], name, source, lines, header, empty_is_missing=True)
    labels = _labels(
        frame[label_column], label_column, anomaly_values, source=source, lines=lines, header=header
    )
    ts = _timestamps(frame[time_column], time_column, source, lines, header)

    if STATION_COLUMN in header:
        station_ids = frame[STATION_COLUMN].to_numpy(dtype=str)
        for row, station in enumerate(station_ids):
            if not _STATION_ID.fullmatch(station):
                raise DataError(
                    f"{_where(source, int(lines[row]), STATION_COLUMN, header)}: "
                    f"station id {station!r} must match {STATION_ID_PATTERN}"
                )
    else:
        station_ids = np.full(len(frame), default_station)

    stations: dict[str, StationSeries] = {}
    for station in dict.fromkeys(station_ids.tolist()):
        mask = station_ids == station
        series = StationSeries(
            station_id=station,
            ts=ts[mask],
            values=values[mask],
            labels=labels[mask],
            lines=lines[mask],
        )
        _check_order(series, source, time_column, header)
        stations[station] = series
    return Dataset(source=source, sensors=chosen, stations=stations)


def _labels(
    column: object,
    name: str,
    anomaly_values: Sequence[str] | None,
    *,
    source: Path,
    lines: npt.NDArray[np.int64],
    header: list[str],
) -> npt.NDArray[np.int8]:
    """1 anomaly, 0 normal, -1 unknown (empty cell); mapped through ``anomaly_values`` when given."""
    import pandas as pd

    text = pd.Series(column).str.strip()
    empty = (text == "").to_numpy()
    if anomaly_values is not None:
        wanted = {v.strip() for v in anomaly_values}
        numeric_wanted = {float(v) for v in wanted if _is_number(v)}
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        hit = text.isin(wanted).to_numpy() | np.isin(numbers, list(numeric_wanted))
        labels = np.where(hit, 1, 0).astype(np.int8)
        labels[empty] = UNKNOWN_LABEL
        return labels
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~empty & ~np.isin(numbers, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{_where(source, int(lines[row]), name, header)}: label must be 0, 1 or empty (unknown), got "
            f"{text.iloc[row]!r}; --anomaly-values maps other codes (e.g. --anomaly-values 1,2,3)"
        )
    labels = np.where(numbers == 1.0, 1, 0).astype(np.int8)
    labels[empty] = UNKNOWN_LABEL
    return labels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numeric_column(
    column: object,
    name: str,
    source: Path,
    lines: npt.NDArray[np.int64],
    header: list[str],
    *,
    empty_is_missing: bool = False,
) -> npt.NDArray[np.float64]:
    import pandas as pd

    text = pd.Series(column).str.strip()
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if empty_is_missing:
        bad &= (text != "").to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        cell = text.iloc[row]
        what = "empty cell" if cell == "" else f"not a finite number: {cell!r}"
        raise DataError(f"{_where(source, int(lines[row]), name, header)}: {what}")
    return numbers


def _timestamps(
    column: object, name: str, source: Path, lines: npt.NDArray[np.int64], header: list[str]
) -> npt.NDArray[np.datetime64]:
    import pandas as pd

    text = pd.Series(column).str.strip()
    # Parse cell by cell only to find the culprit; the happy path is one vectorised call.
    try:
        parsed = pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        for row, cell in enumerate(text):
            try:
                pd.to_datetime(cell, utc=True, format="ISO8601")
            except (ValueError, TypeError) as error:
                raise DataError(
                    f"{_where(source, int(lines[row]), name, header)}: not a timestamp: {cell!r}"
                ) from error
        raise
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(f"{_where(source, int(lines[row]), name, header)}: empty timestamp")
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _check_order(series: StationSeries, source: Path, name: str, header: list[str]) -> None:
    """Rows of a station must be in strictly increasing time: the split and windows rely on it."""
    if len(series) < 2:
        return
    delta = np.diff(series.ts)
    zero = np.timedelta64(0, "ns")
    bad = np.flatnonzero(delta <= zero)
    if not len(bad):
        return
    i = int(bad[0])
    line, previous = int(series.lines[i + 1]), int(series.lines[i])
    where = _where(source, line, name, header)
    if delta[i] == zero:
        raise DataError(
            f"{where}: duplicate timestamp {series.ts[i + 1]} for station {series.station_id!r} "
            f"(also on line {previous})"
        )
    raise DataError(
        f"{where}: timestamps not sorted: {series.ts[i + 1]} comes after {series.ts[i]} (line {previous}) "
        f"for station {series.station_id!r}"
    )
