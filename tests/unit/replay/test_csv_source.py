from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.errors import ConfigError, DataError
from detector.readings import DEFAULT_SENSORS, Reading, ReadingParser
from replay.csv_source import (
    CsvSource,
    FrameSource,
    RowBlock,
    SourceOptions,
    resolve_layout,
)
from replay.disorder import DisorderOptions
from replay.prepare import prepare
from tests.property_depth import examples

ORIGINAL = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "rebombeo_huachicoleo.csv"
SENSOR_VALUES = "500.5,70.25,1800,15,400"


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def read_all(source: CsvSource | FrameSource) -> tuple[RowBlock, list[str], int, int]:
    blocks = list(source.blocks())
    if not blocks:
        empty = RowBlock(np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, np.int64), np.zeros((0, 5)))
        return empty, [], 0, 0
    rows = RowBlock(
        np.concatenate([b.rows.lines for b in blocks]),
        np.concatenate([b.rows.station_ids for b in blocks]),
        np.concatenate([b.rows.ts_ns for b in blocks]),
        np.concatenate([b.rows.values for b in blocks]),
    )
    rejects = [str(r) for b in blocks for r in b.rejected]
    return rows, rejects, sum(b.rows_read for b in blocks), sum(b.filtered for b in blocks)


def ns(text: str) -> int:
    return int(pd.Timestamp(text).value)


def test_original_layout_gets_the_default_station_and_never_reads_the_label(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,flow,pressure,pump_rpm,tank_level,power,label\n"
        f"2025-01-01 00:00:00,{SENSOR_VALUES},0.0\n"
        f"2025-01-01 00:01:00,{SENSOR_VALUES},1.0\n",
    )
    source = CsvSource(path, SourceOptions(default_station="EST-09"))
    assert source.layout.station_column is None
    assert source.layout.ignored_columns == ("label",)
    rows, rejects, read, _ = read_all(source)
    assert rejects == []
    assert read == 2
    assert rows.station_ids.tolist() == ["EST-09", "EST-09"]
    assert rows.lines.tolist() == [2, 3]
    assert rows.ts_ns.tolist() == [ns("2025-01-01T00:00:00Z"), ns("2025-01-01T00:01:00Z")]
    assert rows.values[0].tolist() == [500.5, 70.25, 1800.0, 15.0, 400.0]


@pytest.mark.skipif(not ORIGINAL.exists(), reason="shared data set not present")
def test_the_original_data_set_reads_completely() -> None:
    rows, rejects, read, _ = read_all(CsvSource(ORIGINAL))
    assert (read, len(rows), rejects) == (5000, 5000, [])
    assert rows.lines[-1] == 5001
    assert np.all(np.diff(rows.ts_ns) == 60 * 10**9)


def test_simulator_layout_keeps_stations_and_leaves_extra_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,station_id,flow,pressure,pump_rpm,tank_level,power,suction_pressure,temperature,label,event_id\n"
        f"2025-01-01T00:00:00Z,EST-01,{SENSOR_VALUES},5.1,25.0,0,\n"
        f"2025-01-01T00:00:00Z,EST-02,{SENSOR_VALUES},5.2,25.5,1,ev-7\n",
    )
    source = CsvSource(path)
    assert source.layout.sensors == DEFAULT_SENSORS
    assert set(source.layout.ignored_columns) == {"suction_pressure", "temperature", "label", "event_id"}
    rows, rejects, _, _ = read_all(source)
    assert rejects == []
    assert rows.station_ids.tolist() == ["EST-01", "EST-02"]

    everything = CsvSource(path, SourceOptions(sensors=None))
    assert everything.layout.sensors == (*DEFAULT_SENSORS, "suction_pressure", "temperature")


def test_any_layout_through_renames(tmp_path: Path) -> None:
    path = write(tmp_path, "when,site,q,p\n2025-03-01 10:00:00+02:00,A-1,12.5,3.25\n")
    options = SourceOptions(
        sensors=("flow", "pressure"),
        rename={"when": "timestamp", "site": "station_id", "q": "flow", "p": "pressure"},
    )
    rows, rejects, _, _ = read_all(CsvSource(path, options))
    assert rejects == []
    assert rows.station_ids.tolist() == ["A-1"]
    assert rows.ts_ns.tolist() == [ns("2025-03-01T08:00:00Z")]  # offsets become UTC
    assert rows.values.tolist() == [[12.5, 3.25]]


def test_missing_columns_and_label_as_sensor_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no timestamp column"):
        resolve_layout(["station_id", "flow"], SourceOptions(sensors=("flow",)))
    with pytest.raises(DataError, match=r"sensor columns missing.*pump_rpm"):
        resolve_layout(["timestamp", "flow", "pressure"], SourceOptions())
    with pytest.raises(ConfigError, match="ground truth"):
        resolve_layout(["timestamp", "flow", "label"], SourceOptions(sensors=("flow", "label")))
    with pytest.raises(ConfigError, match="not in the file"):
        resolve_layout(["timestamp", "flow"], SourceOptions(sensors=("flow",), rename={"q": "flow"}))


def bad_file(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        "timestamp,station_id,flow,pressure,pump_rpm,tank_level,power,label\n"
        f"2025-01-01 00:00:00,EST-01,{SENSOR_VALUES},0\n"  # 2 ok
        f"2025-01-01 00:00:00,EST-02,abc,70,1800,15,400,0\n"  # 3 not a number
        f"2025-01-01 00:00:00,,{SENSOR_VALUES},0\n"  # 4 missing station
        f"yesterday,EST-01,{SENSOR_VALUES},0\n"  # 5 bad timestamp
        f"2025-01-01 00:01:00,EST-01,{SENSOR_VALUES},0,extra\n"  # 6 wrong field count
        "\n"  # 7 blank: skipped silently
        f"2025-01-01 00:01:00,EST-01,500,,1800,15,400,0\n"  # 8 missing value
        f"2025-01-01 00:01:00,bad station!,{SENSOR_VALUES},0\n"  # 9 bad station id
        f"2025-01-01 00:01:00,EST-01,500,inf,1800,15,400,0\n"  # 10 not finite
        f"2025-01-01 00:02:00,EST-02,{SENSOR_VALUES},0",  # 11 ok, no final newline
    )


def test_bad_rows_are_reported_with_their_line_and_skipped(tmp_path: Path) -> None:
    rows, rejects, read, _ = read_all(CsvSource(bad_file(tmp_path)))
    assert rows.lines.tolist() == [2, 11]
    assert rows.station_ids.tolist() == ["EST-01", "EST-02"]
    assert [r.split(":")[0] for r in rejects] == [f"line {n}" for n in (3, 4, 5, 6, 8, 9, 10)]
    reasons = [r.split(": ")[1] for r in rejects]
    assert reasons == [
        "not_a_number",
        "missing_station",
        "bad_timestamp",
        "wrong_field_count",
        "missing_value",
        "bad_station_id",
        "not_finite",
    ]
    assert read == 9  # every non-blank data line


def test_line_numbers_survive_small_blocks(tmp_path: Path) -> None:
    path = bad_file(tmp_path)
    whole = read_all(CsvSource(path))
    for block_bytes in (1, 7, 64, 100):
        small = read_all(CsvSource(path, SourceOptions(block_bytes=block_bytes)))
        assert small[0].lines.tolist() == whole[0].lines.tolist()
        assert small[1] == whole[1]
        assert small[2] == whole[2]


def test_strict_stops_at_the_first_bad_row(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.csv:3: not_a_number"):
        read_all(CsvSource(bad_file(tmp_path), SourceOptions(strict=True)))


def test_station_filter_and_time_cut_count_as_filtered(tmp_path: Path) -> None:
    lines = ["timestamp,station_id,flow,pressure,pump_rpm,tank_level,power"]
    for minute in range(4):
        for station in ("EST-01", "EST-02"):
            lines.append(f"2025-01-01 00:0{minute}:00,{station},{SENSOR_VALUES}")
    path = write(tmp_path, "\n".join(lines) + "\n")
    options = SourceOptions(
        stations=frozenset({"EST-02"}),
        start=datetime(2025, 1, 1, 0, 1, tzinfo=UTC),
        end=datetime(2025, 1, 1, 0, 3, tzinfo=UTC),
    )
    rows, rejects, read, filtered = read_all(CsvSource(path, options))
    assert rejects == []
    assert read == 8
    assert filtered == 6
    assert rows.station_ids.tolist() == ["EST-02", "EST-02"]
    assert rows.ts_ns.tolist() == [ns("2025-01-01T00:01:00Z"), ns("2025-01-01T00:02:00Z")]


def test_options_refuse_naive_cut_times() -> None:
    with pytest.raises(ConfigError, match="timezone-aware"):
        SourceOptions(start=datetime(2025, 1, 1))  # noqa: DTZ001 - the naive time under test


def test_quoted_fields_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,station_id,flow,pressure,pump_rpm,tank_level,power,note\n"
        f'2025-01-01 00:00:00,EST-01,{SENSOR_VALUES},"a, b"\n'
        f"2025-01-01 00:01:00,EST-01,{SENSOR_VALUES},c,d\n",
    )
    rows, rejects, _, _ = read_all(CsvSource(path))
    assert rows.lines.tolist() == [2]
    assert rejects == ["line 3: wrong_field_count: expected 8, got 9"]


def test_timestamps_keep_microseconds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"timestamp,flow,pressure,pump_rpm,tank_level,power\n2025-01-01T00:00:00.1234567Z,{SENSOR_VALUES}\n",
    )
    rows, _, _, _ = read_all(CsvSource(path))
    assert rows.ts_ns.tolist() == [ns("2025-01-01T00:00:00.123456Z")]


def test_frame_source_validates_like_a_file() -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2025-01-01 00:00", "2025-01-01 00:01", "2025-01-01 00:02"]),
            "station_id": ["EST-01", "EST-01", None],
            **{name: [1.0, float("nan"), 3.0] for name in DEFAULT_SENSORS},
            "label": [0, 0, 1],
        }
    )
    rows, rejects, read, _ = read_all(FrameSource(frame))
    assert read == 3
    assert rows.lines.tolist() == [1]
    assert rows.ts_ns.tolist() == [ns("2025-01-01T00:00:00Z")]
    assert rejects == ["line 2: missing_value: flow", "line 3: missing_station: ''"]


KINDS = {
    "good": (None, "2025-01-01 00:00:00,EST-01,{v},70,1800,15,400,0"),
    "nan": ("not_finite", "2025-01-01 00:00:00,EST-01,nan,70,1800,15,400,0"),
    "text": ("not_a_number", "2025-01-01 00:00:00,EST-01,x{v},70,1800,15,400,0"),
    "extra": ("wrong_field_count", "2025-01-01 00:00:00,EST-01,{v},70,1800,15,400,0,9"),
    "no_station": ("missing_station", "2025-01-01 00:00:00,,{v},70,1800,15,400,0"),
    "bad_ts": ("bad_timestamp", "2025-13-45 00:00:00,EST-01,{v},70,1800,15,400,0"),
    "blank": (None, ""),
}


@pytest.mark.slow
@settings(max_examples=examples(40), deadline=None)
@given(
    kinds=st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=60),
    block_bytes=st.integers(min_value=1, max_value=4000),
)
def test_line_numbers_are_exact_whatever_the_mix_and_the_blocks(
    tmp_path_factory: pytest.TempPathFactory, kinds: list[str], block_bytes: int
) -> None:
    lines = ["timestamp,station_id,flow,pressure,pump_rpm,tank_level,power,label"]
    lines += [KINDS[kind][1].format(v=500 + i) for i, kind in enumerate(kinds)]
    path = tmp_path_factory.mktemp("mix") / "mix.csv"
    path.write_text("\n".join(lines) + "\n")
    rows, rejects, read, _ = read_all(CsvSource(path, SourceOptions(block_bytes=block_bytes)))
    good = [i + 2 for i, kind in enumerate(kinds) if kind == "good"]
    assert rows.lines.tolist() == good
    assert rows.values[:, 0].tolist() == [500.0 + line - 2 for line in good]
    expected = [f"line {i + 2}: {KINDS[kind][0]}" for i, kind in enumerate(kinds) if KINDS[kind][0]]
    assert [": ".join(r.split(": ")[:2]) for r in rejects] == expected
    assert read == sum(1 for kind in kinds if kind != "blank")


def test_only_plain_json_number_texts_are_kept_as_text(tmp_path: Path) -> None:
    """A text goes on the wire as it is only when it is a plain JSON number of at most 8 characters;
    any other number is sent as its value formatted again (or rejected, if it is none)."""
    plain = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
    rng = np.random.default_rng(5)
    alphabet = "0123456789.-+eE x"
    texts = ["", "0", "-0", "00", "007", "0.5", "5.", ".5", "-.5", "+5", " 5", "5 ", "1e3", "nan", "inf"]
    texts += ["0x10", "1.2.3", "1-2", "-", "12345678", "123456789", "509.90", "-1.50", "\u00e9"]
    texts += ["".join(rng.choice(list(alphabet), rng.integers(0, 10))) for _ in range(3000)]
    header = "timestamp,station_id,flow,pressure,pump_rpm,tank_level,power\n"
    body = "".join(f"2025-01-01T00:00:00Z,EST-01,1,{text},3,4,5\n" for text in texts)
    path = write(tmp_path, header + body)
    blocks = list(prepare(CsvSource(path), DEFAULT_SENSORS, DisorderOptions(), 1))
    messages = [m for block in blocks for m in block.batch.messages()]
    rejected = {r.line for block in blocks for r in block.rejected}
    assert len(messages) == len(texts) - len(rejected)
    sent = iter(messages)
    for line, text in enumerate(texts, start=2):
        if line in rejected:
            continue
        pressure = re.search(rb'"pressure":([^,]*),', next(sent))
        assert pressure is not None
        if plain.fullmatch(text) is not None and len(text) <= 8:
            assert pressure.group(1) == text.encode(), text
        else:
            # The value pandas read, formatted again (pandas takes a few texts float() refuses).
            assert pressure.group(1) == orjson.dumps(float(pressure.group(1))), text


def test_odd_number_texts_are_normalised_or_rejected_with_their_line(tmp_path: Path) -> None:
    header = "timestamp,station_id,flow,pressure,pump_rpm,tank_level,power\n"
    lines = [
        f"2025-01-01T00:0{i}:00Z,EST-01,509.90,{value},1800,15,400\n"
        for i, value in enumerate(["70.25", "+5", " 5", "5.", "007", "1e3", "nan", "inf", "1e999", "0x10"])
    ]
    path = write(tmp_path, header + "".join(lines))
    rows, rejects, read, _ = read_all(CsvSource(path))
    assert read == 10
    assert rejects == [
        "line 8: not_finite: pressure='nan'",
        "line 9: not_finite: pressure='inf'",
        "line 10: not_finite: pressure='1e999'",
        "line 11: not_a_number: pressure='0x10'",
    ]
    assert rows.lines.tolist() == [2, 3, 4, 5, 6, 7]
    assert rows.values[:, 1].tolist() == [70.25, 5.0, 5.0, 5.0, 7.0, 1000.0]
    assert rows.values[:, 0].tolist() == [509.9] * 6
    assert rows.ts_ns.tolist() == [ns(f"2025-01-01T00:0{i}:00Z") for i in range(6)]


def test_wire_bytes_of_a_file_with_odd_rows_parse_to_the_file_values(tmp_path: Path) -> None:
    header = "timestamp,station_id,flow,pressure,pump_rpm,tank_level,power,label\n"
    lines = [
        f"2025-01-01T00:00:{i:02d}Z,EST-0{i % 3},5{i}.90,{'+7' if i % 4 == 0 else '70.25'},1800,15,400,1\n"
        for i in range(40)
    ]
    lines[7] = "2025-01-01T00:00:07Z,EST-01,1,2,,4,5,0\n"
    path = write(tmp_path, header + "".join(lines))
    source = CsvSource(path, SourceOptions(block_bytes=700))
    parser = ReadingParser(DEFAULT_SENSORS, limits={})
    messages = [
        m for block in prepare(source, DEFAULT_SENSORS, DisorderOptions(), 1) for m in block.batch.messages()
    ]
    readings = [parser.parse(m) for m in messages]
    assert len(readings) == 39
    assert all(isinstance(r, Reading) for r in readings)
    assert all(b"label" not in m for m in messages)
    kept = [i for i in range(40) if i != 7]
    assert [r.values["flow"] for r in readings if isinstance(r, Reading)] == [float(f"5{i}.90") for i in kept]
    assert [r.values["pressure"] for r in readings if isinstance(r, Reading)] == [
        7.0 if i % 4 == 0 else 70.25 for i in kept
    ]


def test_timestamps_mean_what_pandas_iso8601_parser_says(tmp_path: Path) -> None:
    """A row is kept, at that moment, exactly when pandas' ISO 8601 parser (the validator's) accepts
    its text and the moment fits in nanoseconds (1500 and 2300 do not: they used to wrap around)."""
    texts = [
        "2025-01-01T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2024-02-29T23:59:59Z",
        "2025-02-29T00:00:00Z",
        "2025-1-1T00:00:00Z",
        "2025-01-01T24:00:00Z",
        "2025-01-01T00:00:60Z",
        "2025-01-01T00:60:00Z",
        "2025-13-01T00:00:00Z",
        "1500-01-01T00:00:00Z",
        "2300-01-01T00:00:00Z",
        "2025-01-01T00:00:00.5Z",
        "2025-01-01 00:00:00",
        "2025-01-01T00:00:00+02:00",
        "2025-01-01",
        "20250101T000000Z",
        "2025-01-01T00:00:00z",
        " 2025-01-01T00:00:00Z",
        "nan",
    ]
    header = "timestamp,station_id,flow,pressure,pump_rpm,tank_level,power\n"
    path = write(tmp_path, header + "".join(f"{text},EST-01,1,2,3,4,5\n" for text in texts))
    rows, rejects, read, _ = read_all(CsvSource(path))
    assert read == len(texts)
    parsed = pd.to_datetime(pd.Series(texts, dtype=object), format="ISO8601", utc=True, errors="coerce")
    expected = [None if pd.isna(moment) or moment.year in {1500, 2300} else moment for moment in parsed]
    kept = [line for line, moment in enumerate(expected, start=2) if moment is not None]
    assert rows.lines.tolist() == kept
    assert rows.ts_ns.tolist() == [int(moment.value) for moment in expected if moment is not None]
    assert {int(r.split(":")[0].split()[1]) for r in rejects} == set(range(2, len(texts) + 2)) - set(kept)
