"""Readings to wire bytes, a whole block at a time.

The bytes are exactly what ``Reading.to_json_bytes()`` writes (same key order, orjson's shortest
float text, ``ts`` in RFC 3339 with a ``Z`` and microseconds only when present), built without a
Python dict per row: numbers are formatted one column at a time by orjson, station and timestamp
texts once per distinct value, and the pieces are joined into one ``payload`` in which every message
ends with a newline (JSON text never holds a raw newline, and neither do station ids). That one
buffer crosses a process boundary cheaply and splits into messages with one C call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

_SEPARATOR = b"\x00"  # never in orjson's number text nor in the JSON key literals we append


@dataclass
class WireBatch:
    """Encoded messages of one block, keyed by station, with their schedule (event time) for pacing."""

    payload: bytes  # messages, each followed by b"\n"
    key_codes: npt.NDArray[np.int32]  # per message, index into ``keys``
    keys: tuple[bytes, ...]  # station ids, UTF-8
    schedule_ns: npt.NDArray[np.int64]  # per message, non-decreasing within the batch

    def __len__(self) -> int:
        return len(self.key_codes)

    def messages(self) -> list[bytes]:
        values = self.payload.split(b"\n")
        values.pop()  # the empty text after the last newline
        return values

    def key_list(self) -> list[bytes]:
        table = np.empty(len(self.keys), dtype=object)
        table[:] = self.keys
        result: list[bytes] = table[self.key_codes].tolist()
        return result


def format_timestamps(ts_ns: npt.NDArray[np.int64]) -> list[bytes]:
    """RFC 3339 UTC texts with ``Z``, microseconds only when not zero (as ``detector.readings.format_ts``)."""
    as_us = ts_ns.astype("datetime64[ns]").astype("datetime64[us]")
    texts = np.datetime_as_string(as_us, unit="s").astype(object)
    fractional = (ts_ns % 1_000_000_000) != 0
    if fractional.any():
        texts[fractional] = np.datetime_as_string(as_us[fractional], unit="us").astype(object)
    return [f"{text}Z".encode() for text in texts.tolist()]


def _column_pieces(numbers: npt.NDArray[np.float64], suffix: bytes) -> list[bytes]:
    """Each number's JSON text with ``suffix`` appended, in one orjson call and two C string passes."""
    text = orjson.dumps(np.ascontiguousarray(numbers, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)
    pieces = text[1:-1].replace(b",", suffix + _SEPARATOR).split(_SEPARATOR)
    pieces[-1] += suffix
    return pieces


def encode_block(
    station_ids: npt.NDArray[np.object_],
    ts_ns: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    sensors: Sequence[str],
    schedule_ns: npt.NDArray[np.int64] | None = None,
) -> WireBatch:
    """Wire bytes for rows ``(station_ids[i], ts_ns[i], values[i])``; the rows must be validated."""
    n = len(station_ids)
    if schedule_ns is None:
        schedule_ns = ts_ns
    station_codes, stations = pd.factorize(station_ids)
    keys = tuple(str(station).encode() for station in stations)
    if n == 0:
        return WireBatch(b"", np.zeros(0, dtype=np.int32), keys, np.zeros(0, dtype=np.int64))
    quoted = [orjson.dumps(name) for name in sensors]
    # Piece 0: '{"station_id":"S","ts":"' per station; piece 1: 'TS","<first sensor>":' per timestamp;
    # then one piece per sensor: 'NUMBER,"<next sensor>":' and finally 'NUMBER}\n'.
    prefixes = np.empty(len(keys), dtype=object)
    prefixes[:] = [b'{"station_id":"' + key + b'","ts":"' for key in keys]
    ts_codes, ts_uniques = pd.factorize(ts_ns)
    ts_pieces = np.empty(len(ts_uniques), dtype=object)
    ts_pieces[:] = [text + b'",' + quoted[0] + b":" for text in format_timestamps(np.asarray(ts_uniques))]

    grid = np.empty((n, 2 + len(sensors)), dtype=object)
    grid[:, 0] = prefixes[station_codes]
    grid[:, 1] = ts_pieces[ts_codes]
    for j in range(len(sensors)):
        suffix = b"," + quoted[j + 1] + b":" if j + 1 < len(sensors) else b"}\n"
        grid[:, 2 + j] = _column_pieces(values[:, j], suffix)
    payload = b"".join(grid.ravel().tolist())
    return WireBatch(
        payload=payload,
        key_codes=station_codes.astype(np.int32),
        keys=keys,
        schedule_ns=np.asarray(schedule_ns, dtype=np.int64),
    )
