"""Rows of a CSV (or a DataFrame) as validated, vectorised blocks of readings, with line numbers.

Three layouts are understood, told apart by the header alone:

- the original data set's: ``timestamp,flow,pressure,pump_rpm,tank_level,power,label`` (no station
  column: every row belongs to ``SourceOptions.default_station``);
- the simulator's: ``timestamp,station_id,<sensors...>,label,event_id,...``;
- any file with a timestamp column, a station column and sensor columns, mapped with ``rename``
  (``{"csv column": "sensor"}``; ``timestamp`` and ``station_id`` are valid targets too).

Only the chosen sensors are read: labels, event ids and any other column never leave this module.
Naive timestamps are taken as UTC; timestamps are kept to the microsecond, as the wire carries them.

Line numbers are physical lines of the file (the header is line 1). The file is read in byte blocks
cut at line ends. A block whose lines all have the header's field count is parsed and checked by
Arrow (``CsvSource._arrow_block``); any other block line by line: each line's field count is checked
with numpy before pandas parses the block, so a line with a wrong field count is reported with its
number instead of shifting every later one.
A quoted field that spans lines is not supported (telemetry CSVs don't have them).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv

from detector.errors import ConfigError, DataError
from detector.readings import DEFAULT_SENSORS, STATION_ID_PATTERN
from replay.grid_block import grid_columns, parse_grid
from replay.wire import TextColumns

logger = logging.getLogger(__name__)

TIMESTAMP_COLUMNS = ("timestamp", "ts", "time", "datetime")
STATION_COLUMNS = ("station_id", "station")
# Columns that describe ground truth or provenance, never a sensor: with ``sensors=None`` ("all
# numeric columns") these are still left out, so labels cannot leak onto the readings topic.
NON_SENSOR_COLUMNS = frozenset(
    {"label", "labels", "anomaly", "changepoint", "event_id", "event_type", "event", "events", "segment"}
)
DEFAULT_STATION = "EST-01"
DEFAULT_BLOCK_BYTES = 8 * 1024 * 1024

_STATION_ID = re.compile(STATION_ID_PATTERN)
_NEWLINE = 10
_COMMA = 44
_CARRIAGE_RETURN = 13
_NS_PER_US = 1000
# A sensor text sent as it is: a JSON number that is finite, has no exponent and means what float()
# makes of it. Short, so that integers stay far inside what every JSON parser reads exactly.
_PLAIN_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
MAX_TEXT_NUMBER_CHARS = 8

REJECT_REASONS = (
    "wrong_field_count",
    "bad_timestamp",
    "missing_station",
    "bad_station_id",
    "missing_value",
    "not_a_number",
    "not_finite",
)


@dataclass(frozen=True)
class SourceOptions:
    """What to read from the file, and which rows to keep."""

    sensors: tuple[str, ...] | None = DEFAULT_SENSORS  # None: every column that is not reserved
    rename: Mapping[str, str] = field(default_factory=dict)
    default_station: str = DEFAULT_STATION
    stations: frozenset[str] | None = None  # keep only these; None keeps all
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    strict: bool = False  # the first bad row stops the run with DataError
    block_bytes: int = DEFAULT_BLOCK_BYTES

    def __post_init__(self) -> None:
        for name, moment in (("start", self.start), ("end", self.end)):
            if moment is not None and moment.tzinfo is None:
                raise ConfigError(f"{name} must be timezone-aware")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError("end must be after start")
        if not _STATION_ID.fullmatch(self.default_station):
            raise ConfigError(f"default station {self.default_station!r} must match {STATION_ID_PATTERN}")
        if self.sensors is not None and len(self.sensors) == 0:
            raise ConfigError("at least one sensor is needed")


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that is not a reading: ``line`` is the file's line (or a DataFrame's 1-based row)."""

    line: int
    reason: str  # one of REJECT_REASONS
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.detail}"


@dataclass(frozen=True)
class Layout:
    """Which columns hold what, resolved from a header."""

    timestamp_column: str
    station_column: str | None
    sensor_columns: dict[str, str]  # sensor name -> column in the file
    ignored_columns: tuple[str, ...]

    @property
    def sensors(self) -> tuple[str, ...]:
        return tuple(self.sensor_columns)


@dataclass(frozen=True)
class StationCodes:
    """The stations of a block's rows as codes into ``names`` (the reader had them at hand; a
    replay then need not hash every row's id again). ``names[codes[i]] == station_ids[i]``."""

    codes: npt.NDArray[np.int32]
    names: tuple[str, ...]

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> StationCodes:
        return StationCodes(self.codes[index], self.names)


class RowBlock:
    """Validated readings in file order: one entry per row in every array.

    The values are floats, or the file's own number text (``tokens``) from which floats are made
    only if someone asks: a replay sends the text and never needs them.
    """

    def __init__(
        self,
        lines: npt.NDArray[np.int64],
        station_ids: npt.NDArray[np.object_],  # str
        ts_ns: npt.NDArray[np.int64],  # UTC, nanoseconds since the epoch, whole microseconds
        values: npt.NDArray[np.float64] | None = None,  # (n, sensors)
        tokens: TextColumns | None = None,
        *,
        station_codes: StationCodes | None = None,
    ) -> None:
        if values is None and tokens is None:
            raise ValueError("a RowBlock needs values or tokens")
        self.lines = lines
        self.station_ids = station_ids
        self.ts_ns = ts_ns
        self._values = values
        self.tokens = tokens
        self.station_codes = station_codes

    @property
    def values(self) -> npt.NDArray[np.float64]:
        if self._values is None:
            assert self.tokens is not None
            self._values = self.tokens.floats()
        return self._values

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> RowBlock:
        values = None if self._values is None else self._values[index]
        tokens = None if self.tokens is None else self.tokens.take(index)
        codes = None if self.station_codes is None else self.station_codes.take(index)
        return RowBlock(
            self.lines[index], self.station_ids[index], self.ts_ns[index], values, tokens, station_codes=codes
        )


@dataclass
class SourceBlock:
    """One block of the source: the readings kept, and what happened to the other rows."""

    rows: RowBlock
    rows_read: int  # data rows seen (blank lines excluded)
    rejected: list[RejectedRow]
    filtered: int  # valid rows outside the station filter or the time cut
    bytes_done: int  # how far into the file this block ends (0 for a DataFrame)


def resolve_layout(header: Sequence[str], options: SourceOptions) -> Layout:
    """Map a header to timestamp, station and sensor columns; ``ConfigError`` says what is missing."""
    duplicates = [name for name, count in Counter(header).items() if count > 1]
    if duplicates:
        raise DataError(f"duplicate column names in the header: {', '.join(duplicates)}")
    unknown = [name for name in options.rename if name not in header]
    if unknown:
        raise ConfigError(f"--rename names columns that are not in the file: {', '.join(unknown)}")
    renamed = {column: options.rename.get(column, column) for column in header}
    by_role: dict[str, str] = {}
    for column, role in renamed.items():
        if role in by_role:
            raise ConfigError(f"columns {by_role[role]!r} and {column!r} both map to {role!r}")
        by_role[role] = column

    timestamp_column = next((by_role[name] for name in TIMESTAMP_COLUMNS if name in by_role), None)
    if timestamp_column is None:
        raise DataError(
            f"no timestamp column: expected one of {', '.join(TIMESTAMP_COLUMNS)} "
            f"(or --rename COLUMN=timestamp); header is {', '.join(header)}"
        )
    station_column = next((by_role[name] for name in STATION_COLUMNS if name in by_role), None)
    taken = {timestamp_column, station_column}

    if options.sensors is None:
        wanted = [
            renamed[column]
            for column in header
            if column not in taken
            and renamed[column].lower() not in NON_SENSOR_COLUMNS
            and renamed[column] not in TIMESTAMP_COLUMNS
            and renamed[column] not in STATION_COLUMNS
        ]
    else:
        wanted = list(options.sensors)
    missing = [name for name in wanted if name not in by_role or by_role[name] in taken]
    if missing:
        raise DataError(
            f"sensor columns missing from the file: {', '.join(missing)} "
            f"(header is {', '.join(header)}; map columns with --rename COLUMN=SENSOR or pick --sensors)"
        )
    leaking = [name for name in wanted if name.lower() in NON_SENSOR_COLUMNS]
    if leaking:
        raise ConfigError(f"{', '.join(leaking)} is ground truth, not a sensor: it never goes on the topic")
    if not wanted:
        raise DataError("the file has no sensor columns")
    sensor_columns = {name: by_role[name] for name in wanted}
    used = taken | set(sensor_columns.values())
    ignored = tuple(column for column in header if column not in used)
    return Layout(timestamp_column, station_column, sensor_columns, ignored)


def _utc_ns(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return int(pd.Timestamp(moment.astimezone(UTC)).value)


class _RowValidator:
    """Turns parsed columns into a ``SourceBlock``: checks every cell, keeps line numbers."""

    def __init__(self, layout: Layout, options: SourceOptions, origin: str) -> None:
        self.layout = layout
        self.options = options
        self.origin = origin
        self._start_ns = _utc_ns(options.start)
        self._end_ns = _utc_ns(options.end)
        self._station_ok: dict[str, str | None] = {}
        self._unfiltered: _RowValidator | None = None  # for check(): same checks, no filters

    def _station_problem(self, station: str) -> str | None:
        """None when valid, else the reject reason (cached: a file has few stations)."""
        known = self._station_ok.get(station, "")
        if known != "":
            return known
        if station == "":
            problem: str | None = "missing_station"
        elif not _STATION_ID.fullmatch(station):
            problem = "bad_station_id"
        else:
            problem = None
        self._station_ok[station] = problem
        return problem

    def validate(
        self,
        frame: pd.DataFrame,
        lines: npt.NDArray[np.int64],
        bytes_done: int,
        extra: list[RejectedRow],
    ) -> SourceBlock:
        n = len(frame)
        layout = self.layout
        bad = np.zeros(n, dtype=bool)
        reasons: dict[int, tuple[str, str]] = {}

        def mark(mask: npt.NDArray[np.bool_], reason: str, detail_of: Any) -> None:
            fresh = mask & ~bad
            if fresh.any():
                for position in np.flatnonzero(fresh):
                    reasons[int(position)] = (reason, detail_of(int(position)))
                bad[fresh] = True

        ts_ns = self._timestamps(frame[layout.timestamp_column], mark)

        if layout.station_column is None:
            stations = np.full(n, self.options.default_station, dtype=object)
        else:
            stations = self._stations(frame[layout.station_column], mark)

        values = np.empty((n, len(layout.sensor_columns)), dtype=np.float64)
        for j, (sensor, column) in enumerate(layout.sensor_columns.items()):
            values[:, j] = self._numbers(frame[column], sensor, mark)

        rejected = list(extra)
        if reasons:
            rejected.extend(
                RejectedRow(int(lines[position]), reason, detail)
                for position, (reason, detail) in reasons.items()
            )
            rejected.sort(key=lambda row: row.line)
        if rejected and self.options.strict:
            first = rejected[0]
            raise DataError(f"{self.origin}:{first.line}: {first.reason}: {first.detail} (--strict)")

        rows_read = n + sum(1 for row in extra if row.reason == "wrong_field_count")
        return self.select(RowBlock(lines, stations, ts_ns, values), ~bad, rows_read, rejected, bytes_done)

    def check(
        self, frame: pd.DataFrame, lines: npt.NDArray[np.int64]
    ) -> tuple[RowBlock, npt.NDArray[np.bool_], list[RejectedRow]]:
        """Every row of ``frame`` checked, none filtered: (rows, which are valid, the bad ones)."""
        if self._unfiltered is None:
            everything = dataclasses.replace(self.options, strict=False, stations=None, start=None, end=None)
            self._unfiltered = _RowValidator(self.layout, everything, self.origin)
        block = self._unfiltered.validate(frame, lines, 0, [])
        valid = np.isin(lines, block.rows.lines)
        values = np.zeros((len(lines), len(self.layout.sensor_columns)), dtype=np.float64)
        stations = np.full(len(lines), "", dtype=object)
        ts_ns = np.zeros(len(lines), dtype=np.int64)
        values[valid] = block.rows.values
        stations[valid] = block.rows.station_ids
        ts_ns[valid] = block.rows.ts_ns
        return RowBlock(lines, stations, ts_ns, values), valid, block.rejected

    def select(
        self,
        rows: RowBlock,
        keep: npt.NDArray[np.bool_],
        rows_read: int,
        rejected: list[RejectedRow],
        bytes_done: int,
    ) -> SourceBlock:
        """The valid rows (``keep``) that pass the station filter and the time cut."""
        rows_valid = int(keep.sum())
        if self.options.stations is not None:
            keep &= np.isin(rows.station_ids, np.array(sorted(self.options.stations), dtype=object))
        if self._start_ns is not None:
            keep &= rows.ts_ns >= self._start_ns
        if self._end_ns is not None:
            keep &= rows.ts_ns < self._end_ns
        kept = rows if keep.all() else rows.take(keep)
        return SourceBlock(
            rows=kept,
            rows_read=rows_read,
            rejected=rejected,
            filtered=rows_valid - len(kept),
            bytes_done=bytes_done,
        )

    def station_problem(self, station: str) -> str | None:
        return self._station_problem(station)

    def _timestamps(self, column: pd.Series[Any], mark: Any) -> npt.NDArray[np.int64]:
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            parsed = column.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(column.dtype):
            parsed = column.dt.tz_localize("UTC")
        else:
            parsed = pd.to_datetime(column, format="ISO8601", utc=True, errors="coerce", cache=True)
        missing = ~_in_nanosecond_range(parsed)
        ts_ns = parsed.where(~missing).to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
        if missing.any():
            mark(missing, "bad_timestamp", lambda i: _cell(column.iloc[i]))
            ts_ns[missing] = 0
        # The wire carries microseconds: truncating here keeps pacing, disorder and wire in agreement.
        ts_ns -= ts_ns % _NS_PER_US
        result: npt.NDArray[np.int64] = ts_ns
        return result

    def _stations(self, column: pd.Series[Any], mark: Any) -> npt.NDArray[np.object_]:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        names = [("" if _is_na(value) else str(value).strip()) for value in uniques]
        problems = [self._station_problem(name) for name in names]
        table = np.array([*names, ""], dtype=object)
        codes = np.where(codes < 0, len(names), codes)
        stations = table[codes]
        if any(problem is not None for problem in problems) or (codes == len(names)).any():
            problem_table = np.array([*problems, "missing_station"], dtype=object)
            row_problem = problem_table[codes]
            for reason in ("missing_station", "bad_station_id"):
                mark(row_problem == reason, reason, lambda i: _cell(column.iloc[i]))
        return stations

    def _numbers(self, column: pd.Series[Any], sensor: str, mark: Any) -> npt.NDArray[np.float64]:
        if column.dtype.kind in "fiu":
            numbers = column.to_numpy(dtype=np.float64)
            if not np.isfinite(numbers).all():
                mark(np.isnan(numbers), "missing_value", lambda i: sensor)
                mark(np.isinf(numbers), "not_finite", lambda i: f"{sensor}={numbers[i]}")
            return numbers
        # Some cell is not a number: the slow path, which says which and why.
        coerced = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        empty = column.isna().to_numpy() | (column.astype(str).str.strip() == "").to_numpy()
        mark(empty, "missing_value", lambda i: sensor)
        text = column.astype(str).str.strip().str.lower()
        nan_like = text.isin(["nan", "inf", "-inf", "+inf", "infinity", "-infinity"]).to_numpy()
        mark(nan_like | np.isinf(coerced), "not_finite", lambda i: f"{sensor}={_cell(column.iloc[i])}")
        mark(np.isnan(coerced), "not_a_number", lambda i: f"{sensor}={_cell(column.iloc[i])}")
        return np.where(np.isfinite(coerced), coerced, 0.0)


def _is_na(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: object, limit: int = 40) -> str:
    text = "" if _is_na(value) else str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


class CsvSource:
    """A CSV file read block by block; ``blocks()`` may be called again for another pass."""

    def __init__(self, path: Path | str, options: SourceOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options or SourceOptions()
        try:
            with self.path.open("rb") as handle:
                first = handle.readline()
        except OSError as error:
            raise DataError(f"cannot read {self.path}: {error.strerror or error}") from error
        if not first.strip():
            raise DataError(f"{self.path} is empty or has no header")
        self._header_bytes = len(first)
        text = first.decode("utf-8-sig").rstrip("\r\n")
        self.header: list[str] = [name.strip() for name in next(csv.reader([text]))]
        self.layout = resolve_layout(self.header, self.options)
        self.size = self.path.stat().st_size
        self._usecols = [
            self.layout.timestamp_column,
            *([self.layout.station_column] if self.layout.station_column else []),
            *self.layout.sensor_columns.values(),
        ]
        self._arrow_convert = pa_csv.ConvertOptions(
            column_types=dict.fromkeys(self._usecols, pa.string()),
            include_columns=self._usecols,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        self._grid_columns = grid_columns(
            self.header,
            self.layout.timestamp_column,
            self.layout.station_column,
            list(self.layout.sensor_columns.values()),
            MAX_TEXT_NUMBER_CHARS,
        )
        # One line whose sensor fields are all plain numbers (the line's end included, CRLF or LF).
        sensor_fields = set(self.layout.sensor_columns.values())
        fields = [_PLAIN_NUMBER if name in sensor_fields else r"[^,\n]*" for name in self.header]
        self._line_pattern = "^" + ",".join(fields) + r"\r?\n$"

    def blocks(self) -> Iterator[SourceBlock]:
        validator = _RowValidator(self.layout, self.options, str(self.path))
        line = 2  # the first data line
        position = self._header_bytes
        try:
            handle = self.path.open("rb")
        except OSError as error:
            raise DataError(f"cannot read {self.path}: {error.strerror or error}") from error
        with handle:
            handle.seek(self._header_bytes)
            carry = b""
            while True:
                chunk = handle.read(self.options.block_bytes)
                if chunk:
                    data = carry + chunk
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        carry = data
                        continue
                    data, carry = data[:cut], data[cut:]
                    position += len(data)
                else:
                    data, carry = carry, b""
                    position += len(data)
                    if not data:
                        break
                    data += b"\n"  # the last line had no line end
                block, n_lines = self._parse(data, line, position, validator)
                line += n_lines
                if block is not None:
                    yield block

    def _parse(
        self, data: bytes, first_line: int, bytes_done: int, validator: _RowValidator
    ) -> tuple[SourceBlock | None, int]:
        """The block's rows (None when none are left), and how many lines it had."""
        grid = self._grid_block(data, first_line, bytes_done, validator)
        if grid is not None:
            return grid
        return self._parse_general(data, first_line, bytes_done, validator), data.count(b"\n")

    def _parse_general(
        self, data: bytes, first_line: int, bytes_done: int, validator: _RowValidator
    ) -> SourceBlock | None:
        fast = self._arrow_block(data, first_line, bytes_done, validator)
        if fast is not None:
            return fast
        # Blank lines, wrong field counts, quotes, a lone carriage return: line by line with pandas.
        expected = len(self.header)
        quoted = b'"' in data
        if quoted:
            fields, blank = _field_counts_quoted(data)
        else:
            fields, blank = _field_counts(data)
        line_numbers = first_line + np.arange(len(fields), dtype=np.int64)
        good = (fields == expected) & ~blank
        extra: list[RejectedRow] = []
        if not good.all():
            wrong = ~good & ~blank
            extra = [
                RejectedRow(
                    int(line_numbers[i]), "wrong_field_count", f"expected {expected}, got {fields[i]}"
                )
                for i in np.flatnonzero(wrong)
            ]
            pieces = data.split(b"\n")
            data = b"\n".join(pieces[i] for i in np.flatnonzero(good)) + b"\n"
            line_numbers = line_numbers[good]
        if len(line_numbers) == 0:
            if not extra:
                return None
            empty = pd.DataFrame({column: pd.Series(dtype=object) for column in self._usecols})
            return validator.validate(empty, line_numbers, bytes_done, extra)
        frame = self._read_frame(data)
        if len(frame) != len(line_numbers):
            raise DataError(
                f"{self.path}: lines {first_line}-{first_line + len(fields) - 1} parse into "
                f"{len(frame)} rows, not {len(line_numbers)} (a quoted field spanning lines?)"
            )
        return validator.validate(frame, line_numbers, bytes_done, extra)

    def _grid_block(
        self, data: bytes, first_line: int, bytes_done: int, validator: _RowValidator
    ) -> tuple[SourceBlock, int] | None:
        """The block through the compiled one-pass parser (``replay.grid_block``) and its line
        count, or None when it declines the block (any line not plain) or is not built; then
        ``_arrow_block`` reads it."""
        grid = parse_grid(data, self._grid_columns)
        if grid is None or any(validator.station_problem(name) is not None for name in grid.stations):
            return None
        n_lines = grid.rows
        codes: StationCodes | None = None
        if self.layout.station_column is None:
            stations = np.full(n_lines, self.options.default_station, dtype=object)
        else:
            table = np.empty(len(grid.stations), dtype=object)
            table[:] = grid.stations
            stations = table[grid.station_codes]
            codes = StationCodes(grid.station_codes, tuple(grid.stations))
        lines = first_line + np.arange(n_lines, dtype=np.int64)
        rows = RowBlock(lines, stations, grid.ts_ns, tokens=TextColumns(grid.texts), station_codes=codes)
        return validator.select(rows, np.ones(n_lines, dtype=bool), n_lines, [], bytes_done), n_lines

    def _arrow_block(
        self, data: bytes, first_line: int, bytes_done: int, validator: _RowValidator
    ) -> SourceBlock | None:
        """The block parsed and checked by Arrow's C++ code, or None when it is not a plain grid.

        Why: a Python or numpy operation per value was most of a replay's CPU. Arrow's CSV reader
        reads the used columns as text, one RE2 match per line checks that every sensor text is a
        plain JSON number (``_PLAIN_NUMBER``, at most ``MAX_TEXT_NUMBER_CHARS`` characters: finite,
        no exponent, meaning what ``float()`` makes of it), timestamps are parsed once per distinct
        text and stations checked once per distinct id. The number texts are then sent as they are
        (``TextColumns``). Rows with anything unusual (a bad or missing cell, ``+5``, ``1e3``,
        ``nan``, a padded station id) go through pandas and the validator like any block, which
        reports the bad ones with their line numbers and formats the others' values again: the two
        paths accept the same rows and mean the same values.

        None (the caller's line-by-line path) when the block has a quote, or Arrow refuses it (a
        line with a wrong field count, a blank line, bad UTF-8), or its rows are not its lines (a
        lone carriage return).
        """
        if b'"' in data:
            return None
        buf = np.frombuffer(data, dtype=np.uint8)
        newlines = np.flatnonzero(buf == _NEWLINE)
        if _has_blank_line(buf, newlines):
            return None
        try:
            table = pa_csv.read_csv(
                pa.py_buffer(data),
                read_options=pa_csv.ReadOptions(
                    column_names=self.header, use_threads=False, block_size=max(len(data), 1 << 20)
                ),
                parse_options=pa_csv.ParseOptions(ignore_empty_lines=False),
                convert_options=self._arrow_convert,
            )
        except pa.ArrowException:
            return None
        n = len(newlines)
        if table.num_rows != n:
            return None
        lines = first_line + np.arange(n, dtype=np.int64)
        line_offsets = np.empty(n + 1, dtype=np.int32)
        line_offsets[0] = 0
        line_offsets[1:] = newlines + 1
        line_texts = pa.BinaryArray.from_buffers(
            pa.binary(), n, [None, pa.py_buffer(line_offsets), pa.py_buffer(data)]
        )
        plain = pc.match_substring_regex(line_texts, self._line_pattern)
        texts = [table.column(column).combine_chunks() for column in self.layout.sensor_columns.values()]
        for column in texts:
            plain = pc.and_(plain, pc.less_equal(pc.binary_length(column), MAX_TEXT_NUMBER_CHARS))
        clean = plain.to_numpy(zero_copy_only=False)

        ts_ns, ts_ok = _parsed_timestamps(table.column(self.layout.timestamp_column).combine_chunks())
        clean &= ts_ok
        if self.layout.station_column is None:
            stations = np.full(n, self.options.default_station, dtype=object)
        else:
            stations, stations_ok = _checked_stations(
                table.column(self.layout.station_column).combine_chunks(), validator
            )
            clean &= stations_ok
        if clean.all():
            rows = RowBlock(lines, stations, ts_ns, tokens=TextColumns(texts))
            return validator.select(rows, clean, n, [], bytes_done)

        # The other rows, through pandas; the valid ones get their values' JSON text instead.
        odd = np.flatnonzero(~clean)
        frame = self._read_frame(b"".join(data[line_offsets[i] : line_offsets[i + 1]] for i in odd.tolist()))
        checked, valid, rejected = validator.check(frame, lines[odd])
        if rejected and self.options.strict:
            first = rejected[0]
            raise DataError(f"{self.path}:{first.line}: {first.reason}: {first.detail} (--strict)")
        kept_odd = odd[valid]
        if len(kept_odd):
            mask = np.zeros(n, dtype=bool)
            mask[kept_odd] = True
            arrow_mask = pa.array(mask)
            values = checked.values[valid]
            for j, column in enumerate(texts):
                normalised = pa.array(
                    [orjson.dumps(float(v)).decode() for v in values[:, j]], type=pa.string()
                )
                texts[j] = pc.replace_with_mask(column, arrow_mask, normalised)
        stations[odd] = checked.station_ids
        ts_ns[odd] = checked.ts_ns
        clean[kept_odd] = True
        rows = RowBlock(lines, stations, ts_ns, tokens=TextColumns(texts))
        return validator.select(rows, clean, n, rejected, bytes_done)

    def _read_frame(self, data: bytes) -> pd.DataFrame:
        text_columns = [self.layout.timestamp_column]
        if self.layout.station_column is not None:
            text_columns.append(self.layout.station_column)
        try:
            return pd.read_csv(
                io.BytesIO(data),
                header=None,
                names=self.header,
                usecols=self._usecols,
                dtype=dict.fromkeys(text_columns, str),
                engine="c",
                skip_blank_lines=False,
                keep_default_na=False,
                na_values={column: [""] for column in self.layout.sensor_columns.values()},
                encoding="utf-8",
            )
        except (ValueError, UnicodeDecodeError) as error:
            raise DataError(f"{self.path}: cannot parse CSV: {error}") from error


def _has_blank_line(buf: npt.NDArray[np.uint8], newlines: npt.NDArray[np.intp]) -> bool:
    """Whether a block of whole lines has an empty line (or one of just ``\\r``), which is no row
    (Arrow would make it one). ``newlines``: the positions of its line ends."""
    lengths = np.diff(newlines, prepend=-1) - 1
    return bool(((lengths == 0) | ((lengths == 1) & (buf[newlines - 1] == _CARRIAGE_RETURN))).any())


def _in_nanosecond_range(parsed: pd.Series[Any]) -> npt.NDArray[np.bool_]:
    """Which parsed moments are not NaT and fit the nanoseconds the wire and pacing work in (pandas
    parses ``1500-01-01`` in microseconds, and converting it to nanoseconds would wrap around)."""
    low = pd.Timestamp.min.tz_localize("UTC")
    high = pd.Timestamp.max.tz_localize("UTC")
    result: npt.NDArray[np.bool_] = (parsed.notna() & (parsed >= low) & (parsed <= high)).to_numpy()
    return result


def _parsed_timestamps(column: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """(ns truncated to µs, parsed) per row, with pandas' ISO 8601 parser (as the validator's) run
    once per distinct text: a file's rows come one timestamp per station."""
    encoded = column.dictionary_encode()
    texts = pd.Series(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    parsed = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
    unique_ok = _in_nanosecond_range(parsed)
    unique_ns = parsed.where(unique_ok).to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
    unique_ns[~unique_ok] = 0
    unique_ns -= unique_ns % _NS_PER_US  # as the pandas path: the wire carries microseconds
    codes = encoded.indices.to_numpy()
    return unique_ns[codes], unique_ok[codes]


def _checked_stations(
    column: pa.Array, validator: _RowValidator
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]:
    """Station ids, and which are valid and need no stripping (checked once per distinct id)."""
    encoded = column.dictionary_encode()
    names: list[str] = encoded.dictionary.to_pylist()
    good = np.array(
        [name != "" and name == name.strip() and validator.station_problem(name) is None for name in names],
        dtype=bool,
    )
    table = np.empty(len(names), dtype=object)
    table[:] = names
    codes = encoded.indices.to_numpy()
    return table[codes], good[codes]


def _field_counts(data: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Fields per line (commas + 1) and which lines are blank, for a block ending in a newline."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == _NEWLINE)
    commas = np.flatnonzero(buf == _COMMA)
    per_line = np.diff(np.searchsorted(commas, newlines), prepend=0)
    starts = np.concatenate(([0], newlines[:-1] + 1))
    length = newlines - starts
    blank = (length == 0) | ((length == 1) & (buf[np.minimum(starts, len(buf) - 1)] == 13))
    return per_line.astype(np.int64) + 1, blank


def _field_counts_quoted(data: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    lines = data.split(b"\n")[:-1]
    counts = np.empty(len(lines), dtype=np.int64)
    blank = np.zeros(len(lines), dtype=bool)
    for i, raw in enumerate(lines):
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if not text.strip():
            blank[i] = True
            counts[i] = 0
            continue
        counts[i] = len(next(csv.reader([text])))
    return counts, blank


class FrameSource:
    """A DataFrame with the same columns a CSV would have; rows are numbered from 1."""

    def __init__(self, frame: pd.DataFrame, options: SourceOptions | None = None, block_rows: int = 65536):
        self.frame = frame
        self.options = options or SourceOptions()
        self.header = [str(column) for column in frame.columns]
        self.layout = resolve_layout(self.header, self.options)
        self.block_rows = block_rows
        self.size = 0

    def blocks(self) -> Iterator[SourceBlock]:
        validator = _RowValidator(self.layout, self.options, "frame")
        frame = self.frame.copy(deep=False)
        frame.columns = self.header
        for start in range(0, len(frame), self.block_rows):
            part = frame.iloc[start : start + self.block_rows]
            lines = np.arange(start + 1, start + 1 + len(part), dtype=np.int64)
            yield validator.validate(part.reset_index(drop=True), lines, 0, [])
