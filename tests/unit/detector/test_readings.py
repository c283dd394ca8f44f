from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from detector.readings import (
    DEFAULT_SENSORS,
    REASONS,
    ParseFailure,
    Reading,
    ReadingParser,
    SensorLimits,
)
from tests.property_depth import examples

GOOD = {
    "station_id": "EST-03",
    "ts": "2025-01-01T00:05:00Z",
    "flow": 509.9,
    "pressure": 67.9,
    "pump_rpm": 1766,
    "tank_level": 14.7,
    "power": 405.2,
}


def encode(body: object) -> bytes:
    return orjson.dumps(body)


def with_(**changes: object) -> dict[str, object]:
    body = dict(GOOD)
    body.update(changes)
    return body


def without(key: str) -> dict[str, object]:
    return {k: v for k, v in GOOD.items() if k != key}


@pytest.fixture
def parser() -> ReadingParser:
    return ReadingParser()


def test_a_good_reading_parses_to_utc_and_float_values(parser: ReadingParser) -> None:
    reading = parser.parse(encode(GOOD))
    assert isinstance(reading, Reading)
    assert reading.station_id == "EST-03"
    assert reading.ts == datetime(2025, 1, 1, 0, 5, tzinfo=UTC)
    assert reading.values == {
        "flow": 509.9,
        "pressure": 67.9,
        "pump_rpm": 1766.0,
        "tank_level": 14.7,
        "power": 405.2,
    }
    assert list(reading.values) == list(DEFAULT_SENSORS)
    assert all(type(v) is float for v in reading.values.values())


def test_wire_form_round_trips(parser: ReadingParser) -> None:
    reading = parser.parse(encode(GOOD))
    assert isinstance(reading, Reading)
    again = parser.parse(reading.to_json_bytes())
    assert again == reading
    assert orjson.loads(reading.to_json_bytes())["ts"] == "2025-01-01T00:05:00Z"


def test_offsets_are_converted_to_utc(parser: ReadingParser) -> None:
    reading = parser.parse(encode(with_(ts="2025-01-01T00:05:00-06:00")))
    assert isinstance(reading, Reading)
    assert reading.ts == datetime(2025, 1, 1, 6, 5, tzinfo=UTC)
    assert reading.ts.utcoffset() == timedelta(0)


def test_schema_one_is_accepted_and_other_schemas_refused(parser: ReadingParser) -> None:
    assert isinstance(parser.parse(encode(with_(schema=1))), Reading)
    failure = parser.parse(encode(with_(schema=2)))
    assert isinstance(failure, ParseFailure) and failure.reason == "bad_schema"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"x" * 70000, "too_large"),
        (b"{not json", "not_json"),
        (b"", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"text"', "not_object"),
        (encode(without("station_id")), "missing_field"),
        (encode(without("ts")), "missing_field"),
        (encode(without("flow")), "missing_field"),
        (encode(with_(station_id=12)), "wrong_type"),
        (encode(with_(ts=1735689600)), "wrong_type"),
        (encode(with_(flow="509.9")), "wrong_type"),
        (encode(with_(flow=True)), "wrong_type"),
        (encode(with_(flow=None)), "wrong_type"),
        (encode(with_(flow=[1.0])), "wrong_type"),
        (b'{"station_id":"A","ts":"2025-01-01T00:00:00Z","flow":1e999}', "not_finite"),
        (encode(with_(flow=-1.0)), "out_of_range"),
        (encode(with_(pressure=1e6)), "out_of_range"),
        (encode(with_(label=1)), "unknown_sensor"),
        (encode(with_(temperature=20.0)), "unknown_sensor"),
        (encode(with_(ts="yesterday")), "bad_timestamp"),
        (encode(with_(ts="2025-13-01T00:00:00Z")), "bad_timestamp"),
        (encode(with_(ts="2025-01-01T00:05:00")), "naive_timestamp"),
        (encode(with_(station_id="")), "bad_station_id"),
        (encode(with_(station_id="EST 03")), "bad_station_id"),
        (encode(with_(station_id="x" * 65)), "bad_station_id"),
        (encode(with_(station_id="-lead")), "bad_station_id"),
    ],
)
def test_each_failure_has_its_reason(parser: ReadingParser, raw: bytes, reason: str) -> None:
    failure = parser.parse(raw)
    assert isinstance(failure, ParseFailure), failure
    assert failure.reason == reason
    assert failure.reason in REASONS
    assert len(failure.detail) < 200


def test_limits_come_from_the_caller() -> None:
    strict = ReadingParser(limits={"flow": SensorLimits(100.0, 200.0)})
    failure = strict.parse(encode(GOOD))
    assert isinstance(failure, ParseFailure) and failure.reason == "out_of_range"
    # Sensors without a limit accept any finite value.
    loose = ReadingParser(limits={})
    assert isinstance(loose.parse(encode(with_(flow=-5.0))), Reading)


def test_a_bundle_with_other_sensors_parses_those() -> None:
    parser = ReadingParser(sensors=("a", "b"), limits={})
    reading = parser.parse(b'{"station_id":"S1","ts":"2025-01-01T00:00:00+00:00","a":1,"b":2.5}')
    assert isinstance(reading, Reading) and reading.values == {"a": 1.0, "b": 2.5}
    failure = parser.parse(encode(GOOD))
    assert isinstance(failure, ParseFailure) and failure.reason == "unknown_sensor"


def test_the_model_refuses_naive_timestamps_and_nan() -> None:
    with pytest.raises(ValidationError):
        Reading(station_id="A", ts=datetime(2025, 1, 1), values={"flow": 1.0})  # noqa: DTZ001
    with pytest.raises(ValidationError):
        Reading(station_id="A", ts=datetime(2025, 1, 1, tzinfo=UTC), values={"flow": math.nan})
    reading = Reading(
        station_id="A", ts=datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), values={}
    )
    assert reading.ts == datetime(2025, 1, 1, tzinfo=UTC)


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    outcome = ReadingParser().parse(raw)
    assert isinstance(outcome, Reading | ParseFailure)
    if isinstance(outcome, ParseFailure):
        assert outcome.reason in REASONS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.slow
@settings(max_examples=examples(300), deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*GOOD.keys(), "schema", "label", "x"]) | st.text(max_size=8),
        json_values,
        max_size=9,
    )
)
def test_arbitrary_json_objects_never_raise(body: dict[str, object]) -> None:
    try:
        raw = orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):
        return
    outcome = ReadingParser().parse(raw)
    assert isinstance(outcome, Reading | ParseFailure)


@settings(max_examples=examples(100), deadline=None)
@given(st.sampled_from(list(GOOD)), json_values)
def test_any_single_field_mutation_is_a_reading_or_a_known_failure(key: str, value: object) -> None:
    try:
        raw = orjson.dumps(with_(**{key: value}))
    except (TypeError, orjson.JSONEncodeError):
        return  # not representable by orjson (integers beyond 64 bits); the bytes tests cover garbage
    outcome = ReadingParser().parse(raw)
    if isinstance(outcome, ParseFailure):
        assert outcome.reason in REASONS
    else:
        assert outcome.station_id == outcome.station_id.strip()


def test_trusted_reading_equals_a_validated_one(parser: ReadingParser) -> None:
    fast = parser.parse(encode(GOOD))
    assert isinstance(fast, Reading)
    slow = Reading.model_validate(
        {"station_id": "EST-03", "ts": datetime(2025, 1, 1, 0, 5, tzinfo=UTC), "values": fast.values}
    )
    assert fast == slow and slow == fast
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_copy(update={"station_id": "B"}).station_id == "B"
    with pytest.raises(ValidationError):
        fast.station_id = "other"  # type: ignore[misc]


# -- station ids are matched whole (issue 22) ---------------------------------------------------
_VALID_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", fullmatch=True)
_CONTROL = st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"])


def parse_id(station_id: str) -> Reading | ParseFailure:
    return ReadingParser().parse(orjson.dumps({**GOOD, "station_id": station_id}))


@pytest.mark.slow
@settings(max_examples=examples(300), deadline=None)
@given(_VALID_ID, _CONTROL, st.sampled_from(["suffix", "prefix", "inside"]))
def test_a_station_id_with_a_control_or_space_character_anywhere_is_refused(
    station_id: str, bad: str, where: str
) -> None:
    middle = len(station_id) // 2 or 1
    spoiled = {
        "suffix": station_id + bad,
        "prefix": bad + station_id,
        "inside": station_id[:middle] + bad + station_id[middle:],
    }[where]
    failure = parse_id(spoiled)
    assert isinstance(failure, ParseFailure) and failure.reason == "bad_station_id"
    with pytest.raises(ValidationError):
        Reading(station_id=spoiled, ts=datetime(2025, 1, 1, tzinfo=UTC), values={})


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=70))
def test_a_station_id_is_accepted_exactly_when_the_whole_of_it_matches(station_id: str) -> None:
    import re

    whole = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", station_id) is not None
    assert isinstance(parse_id(station_id), Reading) == whole


def test_the_trailing_newline_of_the_issue_is_refused() -> None:
    failure = parse_id("EST-01\n")
    assert isinstance(failure, ParseFailure) and failure.reason == "bad_station_id"
