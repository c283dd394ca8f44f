from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.readings import DEFAULT_SENSORS, Reading, ReadingParser
from replay.wire import TextColumns, encode_block, encode_texts, format_timestamps
from tests.property_depth import examples

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
stations = st.sampled_from(["EST-01", "EST-02", "A.b:c_d-9"])
moments = st.datetimes(
    min_value=datetime(1990, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive, zone comes next
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(st.tuples(stations, moments, st.lists(finite, min_size=5, max_size=5)), min_size=1, max_size=30)
)
def test_bytes_are_exactly_what_reading_writes(rows: list[tuple[str, datetime, list[float]]]) -> None:
    station_ids = np.array([row[0] for row in rows], dtype=object)
    ts_ns = np.array([pd.Timestamp(row[1]).value for row in rows], dtype=np.int64)
    values = np.array([row[2] for row in rows], dtype=np.float64)
    batch = encode_block(station_ids, ts_ns, values, DEFAULT_SENSORS)
    messages = batch.messages()
    expected = [
        Reading(station_id=s, ts=t, values=dict(zip(DEFAULT_SENSORS, v, strict=True))).to_json_bytes()
        for s, t, v in rows
    ]
    assert messages == expected
    assert batch.key_list() == [s.encode() for s, _, _ in rows]


def test_messages_parse_back_with_the_detector_parser() -> None:
    parser = ReadingParser(DEFAULT_SENSORS, limits={})
    ts = np.array([pd.Timestamp("2025-01-01T00:05:00Z").value], dtype=np.int64)
    batch = encode_block(
        np.array(["EST-03"], dtype=object),
        ts,
        np.array([[509.9, 67.9, 1766.1, 14.7, 405.2]]),
        DEFAULT_SENSORS,
    )
    [message] = batch.messages()
    assert message == (
        b'{"station_id":"EST-03","ts":"2025-01-01T00:05:00Z","flow":509.9,"pressure":67.9,'
        b'"pump_rpm":1766.1,"tank_level":14.7,"power":405.2}'
    )
    reading = parser.parse(message)
    assert isinstance(reading, Reading)
    assert reading.ts == datetime(2025, 1, 1, 0, 5, tzinfo=UTC)


def test_timestamps_show_microseconds_only_when_present() -> None:
    base = pd.Timestamp("2025-06-01T12:00:00Z").value
    texts = format_timestamps(np.array([base, base + 1_000, base + 500_000_000], dtype=np.int64)).tolist()
    assert texts == [b"2025-06-01T12:00:00Z", b"2025-06-01T12:00:00.000001Z", b"2025-06-01T12:00:00.500000Z"]
    moment = datetime(2025, 6, 1, 12, tzinfo=UTC) + timedelta(microseconds=1)
    assert (
        Reading(station_id="E", ts=moment, values={}).to_json_bytes()
        == b'{"station_id":"E","ts":"2025-06-01T12:00:00.000001Z"}'
    )


def test_an_empty_block_is_empty() -> None:
    batch = encode_block(
        np.array([], dtype=object), np.array([], dtype=np.int64), np.zeros((0, 5)), DEFAULT_SENSORS
    )
    assert len(batch) == 0
    assert batch.messages() == []


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_any_number_of_sensors(count: int) -> None:
    sensors = tuple(f"s{i}" for i in range(count))
    rng = np.random.default_rng(count)
    values = rng.normal(0, 1000, (50, count))
    ts = pd.Timestamp("2025-01-01T00:00:00Z").value + np.arange(50, dtype=np.int64) * 60 * 10**9
    stations = np.array([f"EST-{i % 4}" for i in range(50)], dtype=object)
    messages = encode_block(stations, ts, values, sensors).messages()
    for i, message in enumerate(messages):
        body = orjson.loads(message)
        assert list(body) == ["station_id", "ts", *sensors]
        assert [body[name] for name in sensors] == values[i].tolist()
        assert body["station_id"] == stations[i]


def _texts_for(texts: list[list[str]]) -> TextColumns:
    """TextColumns holding ``texts`` row by row."""
    return TextColumns([pa.array(list(column), type=pa.string()) for column in zip(*texts, strict=True)])


def _encode(station_ids: list[str], ts_ns: np.ndarray, texts: TextColumns) -> list[bytes]:
    codes, names = pd.factorize(np.array(station_ids, dtype=object))
    batch = encode_texts(codes, [str(name) for name in names], ts_ns, texts, DEFAULT_SENSORS).batch(
        slice(0, len(station_ids))
    )
    assert batch.key_list() == [station.encode() for station in station_ids]
    return batch.messages()


number_texts = st.builds(
    lambda sign, whole, fraction: f"{sign}{whole}{'.' + fraction if fraction else ''}",
    st.sampled_from(["", "-"]),
    st.integers(min_value=0, max_value=99999).map(str),
    st.text(alphabet="0123456789", max_size=3),
)


@pytest.mark.slow
@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(
        st.tuples(stations, moments, st.lists(number_texts, min_size=5, max_size=5)), min_size=1, max_size=30
    )
)
def test_file_text_numbers_parse_to_what_reading_carries(rows: list[tuple[str, datetime, list[str]]]) -> None:
    """The CSV's own number text ("509.90") is not Reading's bytes ("509.9"): same readings parsed."""
    parser = ReadingParser(DEFAULT_SENSORS, limits={})
    ts_ns = np.array([pd.Timestamp(row[1]).value for row in rows], dtype=np.int64)
    tokens = _texts_for([row[2] for row in rows])
    messages = _encode([row[0] for row in rows], ts_ns, tokens)
    for message, (station, moment, texts) in zip(messages, rows, strict=True):
        expected = Reading(
            station_id=station,
            ts=moment,
            values={s: float(t) for s, t in zip(DEFAULT_SENSORS, texts, strict=True)},
        )
        got = parser.parse(message)
        assert isinstance(got, Reading)
        assert parser.parse(expected.to_json_bytes()) == got
        assert got.values == expected.values
    assert tokens.floats().tolist() == [[float(t) for t in row[2]] for row in rows]


def test_file_text_numbers_go_on_the_wire_as_they_are() -> None:
    ts = np.array([pd.Timestamp("2025-01-01T00:05:00Z").value], dtype=np.int64)
    tokens = _texts_for([["509.90", "-0.5", "1766", "0", "405.2"]])
    [message] = _encode(["EST-03"], ts, tokens)
    assert message == (
        b'{"station_id":"EST-03","ts":"2025-01-01T00:05:00Z","flow":509.90,"pressure":-0.5,'
        b'"pump_rpm":1766,"tank_level":0,"power":405.2}'
    )
