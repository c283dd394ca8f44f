from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.readings import DEFAULT_SENSORS, Reading, ReadingParser
from replay.wire import RawTokens, encode_block, encode_tokens, format_timestamps

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
stations = st.sampled_from(["EST-01", "EST-02", "A.b:c_d-9"])
moments = st.datetimes(
    min_value=datetime(1990, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive, zone comes next
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(max_examples=60, deadline=None)
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


def _tokens_for(texts: list[list[str]]) -> RawTokens:
    """RawTokens over a CSV-like buffer holding ``texts`` row by row."""
    data = b""
    starts: list[list[int]] = []
    ends: list[list[int]] = []
    for row in texts:
        starts.append([])
        ends.append([])
        for text in row:
            data += b"x,"  # something around every token, as in a CSV line
            starts[-1].append(len(data))
            data += text.encode()
            ends[-1].append(len(data))
        data += b"\n"
    buffer = np.frombuffer(data, dtype=np.uint8)
    return RawTokens(buffer, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64))


number_texts = st.builds(
    lambda sign, whole, fraction: f"{sign}{whole}{'.' + fraction if fraction else ''}",
    st.sampled_from(["", "-"]),
    st.integers(min_value=0, max_value=99999).map(str),
    st.text(alphabet="0123456789", max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(stations, moments, st.lists(number_texts, min_size=5, max_size=5)), min_size=1, max_size=30
    )
)
def test_file_text_numbers_parse_to_what_reading_carries(rows: list[tuple[str, datetime, list[str]]]) -> None:
    """The CSV's own number text ("509.90") is not Reading's bytes ("509.9"): same readings parsed."""
    parser = ReadingParser(DEFAULT_SENSORS, limits={})
    station_ids = np.array([row[0] for row in rows], dtype=object)
    ts_ns = np.array([pd.Timestamp(row[1]).value for row in rows], dtype=np.int64)
    tokens = _tokens_for([row[2] for row in rows])
    batch = encode_tokens(station_ids, ts_ns, tokens, DEFAULT_SENSORS)
    for message, (station, moment, texts) in zip(batch.messages(), rows, strict=True):
        expected = Reading(
            station_id=station,
            ts=moment,
            values={s: float(t) for s, t in zip(DEFAULT_SENSORS, texts, strict=True)},
        )
        got = parser.parse(message)
        assert isinstance(got, Reading)
        assert parser.parse(expected.to_json_bytes()) == got
        assert got.values == expected.values
    assert batch.key_list() == [s.encode() for s, _, _ in rows]
    assert tokens.floats().tolist() == [[float(t) for t in row[2]] for row in rows]


def test_file_text_numbers_go_on_the_wire_as_they_are() -> None:
    ts = np.array([pd.Timestamp("2025-01-01T00:05:00Z").value], dtype=np.int64)
    tokens = _tokens_for([["509.90", "-0.5", "1766", "0", "405.2"]])
    [message] = encode_tokens(np.array(["EST-03"], dtype=object), ts, tokens, DEFAULT_SENSORS).messages()
    assert message == (
        b'{"station_id":"EST-03","ts":"2025-01-01T00:05:00Z","flow":509.90,"pressure":-0.5,'
        b'"pump_rpm":1766,"tank_level":0,"power":405.2}'
    )
