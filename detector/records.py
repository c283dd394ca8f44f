"""The records the service writes besides alerts: score records, dead-letter reasons, state records.

- ``ScoreRecord``: one per scored window on the scores topic (key = station_id). Readers (charts,
  BI, ``centinela evaluate sim``) validate it with ``ScoreRecord.model_validate_json``; the service
  writes it with ``encode_score`` on its hot path, which produces the same JSON without building a
  model per window (``test_encode_score_is_the_model_dump`` guards the equality).
- ``DEAD_LETTER_REASONS``: every reason a dead letter can carry (the parser's plus the admission
  refusals of ``detector.stations``), the ``centinela.reason`` header and the metric label.
- State records (the compacted state topic): a station's incident state (key = station id) and a
  line's segment state (key = ``line_state_key(line_id)``, which no station id can equal since ``/``
  is not allowed in one). A tombstone (no value) says "back to normal, nothing to carry".
- Line records: the accepted readings of one line in one batch, reduced to the fields the line's
  balance reads, forwarded to the line's owner (``encode_line_readings`` / ``decode_line_readings``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from detector.errors import DataError
from detector.readings import REASONS, format_ts

SCORE_SCHEMA = 1
LINE_READING_SCHEMA = 1

# Admission refusals (detector.stations), added to the parser's reasons (detector.readings.REASONS).
EMPTY = "empty"
UNKNOWN_STATION = "unknown_station"
KEY_MISMATCH = "key_mismatch"
FUTURE_TIMESTAMP = "future_timestamp"
DEAD_LETTER_REASONS: tuple[str, ...] = (*REASONS, EMPTY, UNKNOWN_STATION, KEY_MISMATCH, FUTURE_TIMESTAMP)

# A window closed by the idle clock, not by a reading: the station went silent (a data_gap reason).
STATION_SILENT = "station_silent"

_LINE_STATE_PREFIX = "line/"


class ScoreRecord(BaseModel):
    """One scored window (the scores topic's value, JSON; key = station_id)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: int = Field(default=SCORE_SCHEMA, alias="schema")
    station_id: str
    window_end: AwareDatetime
    score: float
    threshold: float
    model_version: str


def encode_score(
    station_id: str, window_end: datetime, score: float, threshold: float, version: str
) -> bytes:
    """``ScoreRecord(...).model_dump_json(by_alias=True)``, at a fraction of the cost (hot path)."""
    return orjson.dumps(
        {
            "schema": SCORE_SCHEMA,
            "station_id": station_id,
            "window_end": format_ts(window_end),
            "score": score,
            "threshold": threshold,
            "model_version": version,
        }
    )


def encode_state(state: Mapping[str, Any] | None) -> bytes | None:
    """A state record's value: the tracker's or monitor's plain-JSON state, or None (a tombstone)."""
    return None if state is None else orjson.dumps(state)


def decode_state(raw: bytes, key: str) -> dict[str, Any]:
    """A state record back to plain data; ``DataError`` names the key when it is unreadable."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise DataError(f"state record {key!r} is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise DataError(f"state record {key!r} is not an object")
    return value


def line_state_key(line_id: str) -> str:
    """The state topic's key for a line's segment state."""
    return _LINE_STATE_PREFIX + line_id


def line_of_state_key(key: str) -> str | None:
    """The line a state key names, or None for a station's key."""
    return key[len(_LINE_STATE_PREFIX) :] if key.startswith(_LINE_STATE_PREFIX) else None


def encode_line_readings(fields: Sequence[str], rows: Iterable[tuple[str, float, Sequence[float]]]) -> bytes:
    """One line record: the accepted readings of one line's stations in one batch, as
    ``(station_id, ts as Unix seconds, values in ``fields`` order)``. Compact on purpose: only the
    fields the line's balance reads, one record per line and batch (not per reading), no date strings."""
    return orjson.dumps(
        {"v": LINE_READING_SCHEMA, "f": list(fields), "r": [[sid, ts, *values] for sid, ts, values in rows]}
    )


# Unix seconds a line record may carry (1970 to 9999, what a reading's timestamp can be).
_LINE_TS_RANGE = (0.0, 253402300799.0)

LineRows = tuple[tuple[str, ...], list[tuple[str, float, tuple[float, ...]]]]


def decode_line_readings(raw: bytes) -> LineRows:
    """``(fields, rows)`` of a line record: ``rows`` are ``(station_id, ts as Unix seconds, values in
    ``fields`` order)``, as ``encode_line_readings`` was given them; ``DataError`` when it is not one.

    No datetime and no dict per reading: the line table keeps them as they come (hot path)."""
    try:
        body = orjson.loads(raw)
        if body["v"] != LINE_READING_SCHEMA:
            raise DataError(f"line record schema {body['v']!r} is not {LINE_READING_SCHEMA}")
        fields = tuple(str(name) for name in body["f"])
        width = len(fields) + 2
        low, high = _LINE_TS_RANGE
        rows = []
        # Only the service writes these; the checks catch a record that is not one.
        for row in body["r"]:
            if len(row) != width or row[0].__class__ is not str:
                raise DataError(f"line record row {row!r} does not match its fields")
            ts = float(row[1])
            if not low <= ts <= high:
                raise DataError(f"line record row {row!r}: timestamp out of range")
            rows.append((row[0], ts, tuple(map(float, row[2:]))))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as error:
        raise DataError(f"not a line record: {error!r}") from error
    return fields, rows
