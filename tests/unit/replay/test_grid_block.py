"""The compiled one-pass parser against the Arrow path: where it accepts a block, it must read every
row exactly as ``CsvSource._arrow_block`` does; anything doubtful it must decline."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay import grid_block
from replay.csv_source import CsvSource, SourceBlock, SourceOptions, _RowValidator
from replay.grid_block import GridColumns, parse_grid
from tests.property_depth import examples

HEADER = "timestamp,station_id,flow,pressure,pump_rpm,tank_level,power,label"
SENSORS = ("flow", "pressure", "pump_rpm", "tank_level", "power")


def source_for(tmp_path: Path, header: str = HEADER) -> CsvSource:
    path = tmp_path / "readings.csv"
    path.write_text(header + "\n")
    return CsvSource(path, SourceOptions(sensors=SENSORS))


def both_paths(source: CsvSource, data: bytes) -> tuple[SourceBlock | None, SourceBlock | None]:
    validator = _RowValidator(source.layout, source.options, str(source.path))
    found = source._grid_block(data, 2, len(data), validator)
    arrow = source._arrow_block(
        data, 2, len(data), _RowValidator(source.layout, source.options, str(source.path))
    )
    if found is None:
        return None, arrow
    grid, lines = found
    assert lines == data.count(b"\n")
    return grid, arrow


def assert_same_rows(grid: SourceBlock, arrow: SourceBlock) -> None:
    assert not arrow.rejected and arrow.rows_read == grid.rows_read
    np.testing.assert_array_equal(grid.rows.lines, arrow.rows.lines)
    assert list(grid.rows.station_ids) == list(arrow.rows.station_ids)
    np.testing.assert_array_equal(grid.rows.ts_ns, arrow.rows.ts_ns)
    assert grid.rows.tokens is not None and arrow.rows.tokens is not None
    for ours, theirs in zip(grid.rows.tokens.columns, arrow.rows.tokens.columns, strict=True):
        assert ours.to_pylist() == theirs.to_pylist()


def test_the_extension_is_built() -> None:
    # pyproject marks it optional so an install without a compiler still works; here it must exist.
    assert grid_block.available()


def test_a_plain_block_reads_as_the_arrow_path_reads_it(tmp_path: Path) -> None:
    source = source_for(tmp_path)
    lines = [
        "2025-01-01T00:00:00Z,EST-01,506.598,70.238,1806.153,15.199,403.647,0",
        "2025-01-01 00:01:00,EST-02,-0.5,0,1800,15,400.25,1",
        "2025-01-01T00:02:00.123456789Z,EST-01,1.0,2.25,3,4,5,",
        "2025-02-28T23:59:59+00:00,EST-3.b:c_d,0.000001,7,8,9,10,x\r",
        "2024-02-29T12:00:00.5,EST-02,1,2,3,4,5,",
    ]
    data = ("\n".join(lines) + "\n").encode()
    grid, arrow = both_paths(source, data)
    assert grid is not None and arrow is not None
    assert_same_rows(grid, arrow)
    assert list(grid.rows.station_ids) == ["EST-01", "EST-02", "EST-01", "EST-3.b:c_d", "EST-02"]


@pytest.mark.parametrize(
    "line",
    [
        '2025-01-01T00:00:00Z,"EST-01",1,2,3,4,5,0',  # a quote
        "2025-01-01T00:00:00Z,EST-01,1e3,2,3,4,5,0",  # exponent
        "2025-01-01T00:00:00Z,EST-01,+5,2,3,4,5,0",
        "2025-01-01T00:00:00Z,EST-01,007,2,3,4,5,0",
        "2025-01-01T00:00:00Z,EST-01,5.,2,3,4,5,0",
        "2025-01-01T00:00:00Z,EST-01,.5,2,3,4,5,0",
        "2025-01-01T00:00:00Z,EST-01,nan,2,3,4,5,0",
        "2025-01-01T00:00:00Z,EST-01,123456789,2,3,4,5,0",  # longer than MAX_TEXT_NUMBER_CHARS
        "2025-01-01T00:00:00Z,EST-01,,2,3,4,5,0",  # empty
        "2025-01-01T00:00:00Z,EST-01,1,2,3,4,5",  # a field short
        "2025-01-01T00:00:00Z,EST-01,1,2,3,4,5,0,9",  # a field too many
        "2025-01-01T00:00:00Z, EST-01,1,2,3,4,5,0",  # padded station
        "2025-01-01T00:00:00Z,-EST,1,2,3,4,5,0",  # station must start with a letter or digit
        "2025-01-01T00:00:00Z,,1,2,3,4,5,0",
        "2025-02-29T00:00:00Z,EST-01,1,2,3,4,5,0",  # not a leap year
        "2025-01-01T24:00:00Z,EST-01,1,2,3,4,5,0",
        "2025-01-01T23:59:60Z,EST-01,1,2,3,4,5,0",
        "2025-01-01T00:00:00+01:00,EST-01,1,2,3,4,5,0",  # an offset: Arrow and pandas decide
        "2025-01-01,EST-01,1,2,3,4,5,0",
        "1500-01-01T00:00:00Z,EST-01,1,2,3,4,5,0",  # outside nanoseconds since the epoch
        "2025-01-01T00:00:00.1234567891Z,EST-01,1,2,3,4,5,0",
        "2025-01-01T00:00:00Z,EST-01,1,2,3,4,5,\tx",  # a control character
        "2025-01-01T00:00:00Z,EST-01,1,2,3,4,5,ñ",  # not ASCII
        "2025-01-01T00:00:00Z,EST-01,1,2,3,4,5,a\rb",  # a carriage return inside a line
        "",  # a blank line
    ],
)
def test_anything_doubtful_is_declined(tmp_path: Path, line: str) -> None:
    source = source_for(tmp_path)
    good = "2025-01-01T00:00:00Z,EST-01,1,2,3,4,5,0"
    data = f"{good}\n{line}\n{good}\n".encode()
    validator = _RowValidator(source.layout, source.options, str(source.path))
    assert source._grid_block(data, 2, len(data), validator) is None


def test_the_whole_file_replays_the_same_bytes_with_and_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from replay.disorder import DisorderOptions
    from replay.prepare import prepare_file
    from simulator.engine import simulate
    from simulator.scenario import SimulationConfig
    from simulator.writer import write_outputs

    path = write_outputs(simulate(SimulationConfig(stations=5, days=1, seed=3)), tmp_path / "sim").readings

    def wire() -> list[tuple[bytes, list[bytes], bytes]]:
        options = SourceOptions(sensors=None, block_bytes=64 * 1024)
        return [
            (b.batch.payload, b.batch.key_list(), b.batch.schedule_ns.tobytes())
            for b in prepare_file(path, options, DisorderOptions(), 1)
        ]

    with_grid = wire()
    monkeypatch.setattr(grid_block, "_kernel", None)
    assert wire() == with_grid


def test_output_buffers_that_are_too_small_are_refused() -> None:
    kernel = grid_block._kernel
    assert kernel is not None
    data = b"2025-01-01T00:00:00Z,EST-01,1\n"
    with pytest.raises(ValueError, match="too small"):
        kernel.parse(
            data, 1, 3, 0, 1, (2,), 8,
            np.empty(1, np.int64), np.empty(1, np.int32), np.empty(2, np.int32), np.empty(7, np.uint8),
        )  # fmt: skip
    with pytest.raises(ValueError, match="bad sensor field"):
        kernel.parse(
            data, 1, 3, 0, 1, (1,), 8,
            np.empty(1, np.int64), np.empty(1, np.int32), np.empty(2, np.int32), np.empty(8, np.uint8),
        )  # fmt: skip


def test_lines_beyond_the_capacity_or_a_missing_last_newline_are_declined() -> None:
    columns = GridColumns(
        n_fields=3, timestamp_field=0, station_field=1, sensor_fields=(2,), max_number_chars=8
    )
    data = b"2025-01-01T00:00:00Z,EST-01,1\n2025-01-01T00:01:00Z,EST-01,2\n"
    found = parse_grid(data, columns)
    assert found is not None and found.rows == 2
    assert parse_grid(data[:-1], columns) is None  # no final newline
    kernel = grid_block._kernel
    assert kernel is not None
    outputs = (np.empty(1, np.int64), np.empty(1, np.int32), np.empty(2, np.int32), np.empty(8, np.uint8))
    assert kernel.parse(data, 1, 3, 0, 1, (2,), 8, *outputs) is None
    assert kernel.parse(data[: len(data) // 2], 1, 3, 0, 1, (2,), 8, *outputs) is not None


timestamps = st.one_of(
    # Naive on purpose: the file's text has no zone, which the reader takes as UTC.
    st.datetimes(min_value=datetime(1678, 1, 1), max_value=datetime(2261, 12, 31)).map(  # noqa: DTZ001
        datetime.isoformat
    ),
    st.sampled_from(
        [
            "2025-01-01T00:00:00Z",
            "2025-01-01 00:00:00",
            "2025-06-30T12:30:45.25+00:00",
            "2025-01-01T00:00:00z",
        ]
    ),
    st.text(alphabet="0123456789-T:. Z+", min_size=0, max_size=30),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**9), 10**9).map(str),
    st.text(alphabet="0123456789.-+e", min_size=0, max_size=10),
)
stations = st.one_of(st.sampled_from(["EST-01", "EST-02", "a", "Z9_.:-"]), st.text(min_size=0, max_size=8))


@pytest.mark.slow
@settings(
    max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(timestamps, stations, st.lists(numbers, min_size=5, max_size=5), st.text(max_size=4)),
        min_size=1,
        max_size=6,
    )
)
def test_generated_blocks_accepted_only_when_the_arrow_path_agrees(tmp_path: Path, rows: list[Any]) -> None:
    source = source_for(tmp_path)
    text = "".join(f"{ts},{station},{','.join(values)},{label}\n" for ts, station, values, label in rows)
    data = text.encode("utf-8", errors="surrogatepass")
    validator = _RowValidator(source.layout, source.options, str(source.path))
    found = source._grid_block(data, 2, len(data), validator)
    if found is None:
        return
    grid, _ = found
    arrow = source._arrow_block(
        data, 2, len(data), _RowValidator(source.layout, source.options, str(source.path))
    )
    assert arrow is not None
    assert_same_rows(grid, arrow)


plain_timestamps = st.tuples(
    st.datetimes(min_value=datetime(1678, 1, 1), max_value=datetime(2261, 12, 31)),  # noqa: DTZ001
    st.sampled_from(["T", " "]),
    st.sampled_from(["", "Z", "+00:00"]),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
).map(lambda parts: parts[0].isoformat(sep=parts[1], timespec=parts[3]) + parts[2])
plain_numbers = st.tuples(
    st.integers(-999, 9999), st.sampled_from(["", ".0", ".5", ".25", ".125", ".001"])
).map(lambda parts: f"{parts[0]}{parts[1]}")
plain_stations = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,10}", fullmatch=True)


@pytest.mark.slow
@settings(
    max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(plain_timestamps, plain_stations, st.lists(plain_numbers, min_size=5, max_size=5)),
        min_size=1,
        max_size=8,
    ),
    crlf=st.booleans(),
)
def test_generated_plain_blocks_are_accepted_and_read_as_arrow_reads_them(
    tmp_path: Path, rows: list[Any], crlf: bool
) -> None:
    source = source_for(tmp_path)
    end = "\r\n" if crlf else "\n"
    data = "".join(f"{ts},{station},{','.join(values)},0{end}" for ts, station, values in rows).encode()
    grid, arrow = both_paths(source, data)
    assert grid is not None, data
    assert arrow is not None
    assert_same_rows(grid, arrow)


def test_up_to_1024_stations_a_block_are_read_and_more_are_left_to_arrow(tmp_path: Path) -> None:
    source = source_for(tmp_path)

    def block(stations: int) -> bytes:
        return "".join(f"2025-01-01T00:00:00Z,S{i},1,2,3,4,5,0\n" for i in range(stations)).encode()

    grid, arrow = both_paths(source, block(1024))
    assert grid is not None and arrow is not None
    assert_same_rows(grid, arrow)
    assert grid.rows.station_codes is not None and len(grid.rows.station_codes.names) == 1024
    grid, arrow = both_paths(source, block(1025))
    assert grid is None and arrow is not None and len(arrow.rows) == 1025
