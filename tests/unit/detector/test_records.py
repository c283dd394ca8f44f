from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detector.errors import DataError
from detector.readings import REASONS
from detector.records import (
    DEAD_LETTER_REASONS,
    decode_line_readings,
    decode_state,
    encode_line_readings,
    encode_state,
    line_of_state_key,
    line_state_key,
)

T0 = datetime(2025, 1, 1, 0, 5, tzinfo=UTC)


def test_the_dead_letter_catalogue_holds_every_reason_once() -> None:
    assert set(REASONS) < set(DEAD_LETTER_REASONS)
    assert len(set(DEAD_LETTER_REASONS)) == len(DEAD_LETTER_REASONS)


def test_a_line_record_round_trips_and_garbage_is_refused() -> None:
    fields = ("flow", "tank_level")
    raw = encode_line_readings(
        fields, [("EST-01", T0.timestamp(), (510.5, 9.25)), ("EST-02", 1.5e9, (498, 1.0))]
    )
    assert decode_line_readings(raw) == (
        fields,
        [("EST-01", T0.timestamp(), (510.5, 9.25)), ("EST-02", 1.5e9, (498.0, 1.0))],
    )
    for bad in (
        b"nope",
        b"{}",
        b'{"v": 2, "f": [], "r": []}',
        b'{"v": 1, "f": ["flow"], "r": [["EST-01", 1.0]]}',
        b'{"v": 1, "f": ["flow"], "r": [["EST-01", 1.0, "x"]]}',
        b'{"v": 1, "f": ["flow"], "r": [["EST-01", 1.0, 2.0, 3.0]]}',
        b'{"v": 1, "f": ["flow"], "r": [["EST-01", 1e300, 1.0]]}',
    ):
        with pytest.raises(DataError):
            decode_line_readings(bad)


def test_state_records_and_keys() -> None:
    assert encode_state(None) is None
    assert decode_state(encode_state({"a": 1}) or b"", "EST-01") == {"a": 1}
    with pytest.raises(DataError, match="EST-01"):
        decode_state(b"[1]", "EST-01")
    assert line_of_state_key(line_state_key("L1")) == "L1"
    assert line_of_state_key("EST-01") is None
