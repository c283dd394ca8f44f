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
from typing import Any

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


def format_timestamps(ts_ns: npt.NDArray[np.int64], suffix: bytes = b"") -> npt.NDArray[np.bytes_]:
    """RFC 3339 UTC texts with ``Z`` (microseconds only when not zero, as ``detector.readings.format_ts``)
    followed by ``suffix``; built with numpy string operations, not a Python call per value."""
    as_us = ts_ns.astype("datetime64[ns]").astype("datetime64[us]")
    fractional = (ts_ns % 1_000_000_000) != 0
    if fractional.any():
        texts = np.datetime_as_string(as_us, unit="us")
        whole = np.datetime_as_string(as_us[~fractional], unit="s")
        texts = texts.astype(object)
        texts[~fractional] = whole.astype(object)
        texts = texts.astype(str)
    else:
        texts = np.datetime_as_string(as_us, unit="s")
    result: npt.NDArray[np.bytes_] = np.strings.add(texts.astype("S"), b"Z" + suffix)
    return result


def _group_pieces(numbers: npt.NDArray[np.float64], lead: bytes, inner: bytes, tail: bytes) -> list[bytes]:
    """One piece per row, ``lead + a + inner + b + tail``, for one or two columns of numbers.

    orjson writes the (n, 2) array as ``[[a,b],[c,d]]``; replacing the commas with ``inner`` turns the
    row separators into ``]<inner>[``, which then become ``tail + SEP + lead``: two C passes and one
    split give a piece per row carrying two numbers, so half as many objects to create and join.
    """
    text = orjson.dumps(np.ascontiguousarray(numbers, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)
    text = text[2:-2]
    if numbers.shape[1] == 2:
        text = text.replace(b",", inner)
        row_separator = b"]" + inner + b"["
    else:
        row_separator = b"],["
    pieces = text.replace(row_separator, tail + _SEPARATOR + lead).split(_SEPARATOR)
    pieces[0] = lead + pieces[0]
    pieces[-1] += tail
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
    # then one piece per pair of sensors: 'A,"<second>":B' (with ',"<first>":' ahead of all but the
    # first pair), the last one closing the object and the line.
    prefixes = np.empty(len(keys), dtype=object)
    prefixes[:] = [b'{"station_id":"' + key + b'","ts":"' for key in keys]
    ts_codes, ts_uniques = pd.factorize(ts_ns)
    ts_pieces = format_timestamps(np.asarray(ts_uniques), b'",' + quoted[0] + b":").astype(object)

    groups = [(j, min(j + 2, len(sensors))) for j in range(0, len(sensors), 2)]
    width = 2 + len(groups)
    pieces: list[Any] = [None] * (n * width)
    pieces[0::width] = prefixes[station_codes].tolist()
    pieces[1::width] = ts_pieces[ts_codes].tolist()
    for g, (first, stop) in enumerate(groups):
        lead = b"" if first == 0 else b"," + quoted[first] + b":"
        inner = b"," + quoted[first + 1] + b":" if stop - first == 2 else b""
        tail = b"}\n" if stop == len(sensors) else b""
        pieces[2 + g :: width] = _group_pieces(values[:, first:stop], lead, inner, tail)
    payload = b"".join(pieces)
    return WireBatch(
        payload=payload,
        key_codes=station_codes.astype(np.int32),
        keys=keys,
        schedule_ns=np.asarray(schedule_ns, dtype=np.int64),
    )


@dataclass
class RawTokens:
    """Sensor values as the CSV's own number text: ``buffer[starts[i, j]:ends[i, j]]`` is row i's
    sensor j. Only texts checked to be plain JSON numbers (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?``, see
    ``replay.csv_source``) are kept this way, so they can go on the wire as they are."""

    buffer: npt.NDArray[np.uint8]
    starts: npt.NDArray[np.int64]  # (rows, sensors)
    ends: npt.NDArray[np.int64]

    def take(self, index: Any) -> RawTokens:
        return RawTokens(self.buffer, self.starts[index], self.ends[index])

    def floats(self) -> npt.NDArray[np.float64]:
        """The values as floats (correctly rounded, like ``float(text)``), for whoever needs them."""
        if self.starts.size == 0:
            return np.zeros(self.starts.shape, dtype=np.float64)
        lengths = self.ends - self.starts
        width = int(lengths.max())
        at = self.starts[..., None] + np.arange(width)
        chars = np.where(np.arange(width) < lengths[..., None], self.buffer.take(at, mode="clip"), 0)
        texts = np.ascontiguousarray(chars, dtype=np.uint8).view(f"S{width}")[..., 0]
        result: npt.NDArray[np.float64] = texts.astype(np.float64)
        return result


def encode_tokens(
    station_ids: npt.NDArray[np.object_],
    ts_ns: npt.NDArray[np.int64],
    tokens: RawTokens,
    sensors: Sequence[str],
    schedule_ns: npt.NDArray[np.int64] | None = None,
) -> WireBatch:
    """Wire bytes like ``encode_block``'s, with each number copied from the CSV's own text.

    Why: parsing floats and formatting them again was most of a replay's CPU. Every message is a
    run of segments (station prefix, timestamp piece, number, key, number, ..., ``}\\n``), each
    either a slice of the CSV block or of a small table of constant pieces; one numpy gather over a
    byte index built with a cumulative sum copies them all, with no Python object per value. The
    numbers are byte-for-byte the file's (``509.90`` stays ``509.90``), so the JSON parses to the
    same floats as ``Reading.to_json_bytes()`` would carry, not always to the same bytes.
    """
    n = len(station_ids)
    if schedule_ns is None:
        schedule_ns = ts_ns
    station_codes, stations = pd.factorize(station_ids)
    keys = tuple(str(station).encode() for station in stations)
    if n == 0:
        return WireBatch(b"", np.zeros(0, dtype=np.int32), keys, np.zeros(0, dtype=np.int64))
    k = len(sensors)
    quoted = [orjson.dumps(name) for name in sensors]
    ts_codes, ts_uniques = pd.factorize(ts_ns)
    constants: list[bytes] = [b'{"station_id":"' + key + b'","ts":"' for key in keys]
    constants += format_timestamps(np.asarray(ts_uniques), b'",' + quoted[0] + b":").tolist()
    constants += [b"," + name + b":" for name in quoted[1:]]
    constants.append(b"}\n")
    lengths = np.fromiter((len(piece) for piece in constants), dtype=np.int64, count=len(constants))
    offsets = np.cumsum(lengths) - lengths

    low = int(tokens.starts.min())
    high = int(tokens.ends.max())
    source = np.concatenate([tokens.buffer[low:high], np.frombuffer(b"".join(constants), dtype=np.uint8)])
    table_base = high - low
    ts_base = len(keys)
    key_base = ts_base + len(ts_uniques)

    width = 2 * k + 2
    seg_source = np.empty((n, width), dtype=np.int64)
    seg_length = np.empty((n, width), dtype=np.int64)
    seg_source[:, 0] = table_base + offsets[station_codes]
    seg_length[:, 0] = lengths[station_codes]
    seg_source[:, 1] = table_base + offsets[ts_base + ts_codes]
    seg_length[:, 1] = lengths[ts_base + ts_codes]
    seg_source[:, 2::2] = tokens.starts - low
    seg_length[:, 2::2] = tokens.ends - tokens.starts
    for j in range(1, k):
        seg_source[:, 2 * j + 1] = table_base + offsets[key_base + j - 1]
        seg_length[:, 2 * j + 1] = lengths[key_base + j - 1]
    seg_source[:, -1] = table_base + offsets[-1]
    seg_length[:, -1] = lengths[-1]

    # Byte t of the payload comes from source[index[t]]; within a segment the index steps by one,
    # and at a segment's first byte it jumps to that segment's source (no segment is empty).
    starts_flat = seg_source.ravel()
    lengths_flat = seg_length.ravel()
    ends_out = np.cumsum(lengths_flat)
    total = int(ends_out[-1])
    # int32 (a batch is far below 2 GiB): these are the only passes over every byte, and half the
    # width is half the memory traffic.
    step = np.ones(total, dtype=np.int32)
    step[0] = starts_flat[0]
    step[ends_out[:-1]] = starts_flat[1:] - (starts_flat[:-1] + lengths_flat[:-1] - 1)
    np.cumsum(step, out=step)
    payload = source.take(step).tobytes()
    return WireBatch(
        payload=payload,
        key_codes=station_codes.astype(np.int32),
        keys=keys,
        schedule_ns=np.asarray(schedule_ns, dtype=np.int64),
    )
