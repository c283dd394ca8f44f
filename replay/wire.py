"""Readings to wire bytes, a whole block at a time.

The bytes are exactly what ``Reading.to_json_bytes()`` writes (same key order, orjson's shortest
float text, ``ts`` in RFC 3339 with a ``Z`` and microseconds only when present), built without a
Python dict per row: numbers are formatted one column at a time by orjson, station and timestamp
texts once per distinct value, and the pieces are joined into one ``payload`` in which every message
ends with a newline (JSON text never holds a raw newline, and neither do station ids). That one
buffer crosses a process boundary cheaply and splits into messages with one C call.

``encode_texts`` is the CSV replay's variant: the file's own number texts (Arrow string columns),
joined with the key pieces by one Arrow call per block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    followed by ``suffix``; built with numpy operations, not a Python call per value."""
    if ((ts_ns % 1_000_000_000) == 0).all():
        return _whole_second_texts(ts_ns, suffix)
    as_us = ts_ns.astype("datetime64[ns]").astype("datetime64[us]")
    fractional = (ts_ns % 1_000_000_000) != 0
    texts = np.datetime_as_string(as_us, unit="us").astype(object)
    texts[~fractional] = np.datetime_as_string(as_us[~fractional], unit="s").astype(object)
    result: npt.NDArray[np.bytes_] = np.strings.add(texts.astype(str).astype("S"), b"Z" + suffix)
    return result


_WHOLE_SECOND_TEMPLATE = np.frombuffer(b"0000-00-00T00:00:00Z", dtype=np.uint8)
# (field, first column) of each two-digit field after the year in the template above.
_TWO_DIGIT_FIELDS = ((1, 5), (2, 8), (3, 11), (4, 14), (5, 17))


def _whole_second_texts(ts_ns: npt.NDArray[np.int64], suffix: bytes) -> npt.NDArray[np.bytes_]:
    """``YYYY-MM-DDTHH:MM:SSZ`` + suffix for whole seconds, digit by digit: numpy's
    ``datetime_as_string`` and a string add cost a few microseconds per value, this a few dozen ns."""
    seconds = ts_ns // 1_000_000_000
    days = (seconds // 86_400).astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    second_of_day = seconds % 86_400
    fields = (
        months.astype("datetime64[Y]").astype(np.int64) + 1970,
        months.astype(np.int64) % 12 + 1,
        (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
        second_of_day // 3600,
        second_of_day // 60 % 60,
        second_of_day % 60,
    )
    width = len(_WHOLE_SECOND_TEMPLATE) + len(suffix)
    out = np.empty((len(ts_ns), width), dtype=np.uint8)
    out[:, : len(_WHOLE_SECOND_TEMPLATE)] = _WHOLE_SECOND_TEMPLATE
    out[:, len(_WHOLE_SECOND_TEMPLATE) :] = np.frombuffer(suffix, dtype=np.uint8)
    year = fields[0]
    for column, power in enumerate((1000, 100, 10, 1)):
        out[:, column] += (year // power % 10).astype(np.uint8)
    for field_index, column in _TWO_DIGIT_FIELDS:
        out[:, column] += (fields[field_index] // 10).astype(np.uint8)
        out[:, column + 1] += (fields[field_index] % 10).astype(np.uint8)
    result: npt.NDArray[np.bytes_] = out.view(f"S{width}")[:, 0]
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


class TextColumns:
    """Sensor values as the CSV's own number text, one Arrow string array per sensor (row i's sensor
    j is ``columns[j][i]``). Only texts checked to be plain JSON numbers
    (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?``, see ``replay.csv_source``) are kept this way, so they can go
    on the wire as they are."""

    def __init__(self, columns: Sequence[pa.Array]) -> None:
        self.columns = list(columns)

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def take(self, index: Any) -> TextColumns:
        """Rows by position (integers or a slice) or by a boolean mask."""
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return TextColumns([column.slice(start, max(0, stop - start)) for column in self.columns])
            index = np.arange(start, stop, step)
        index = np.asarray(index)
        if index.dtype == np.bool_:
            mask = pa.array(index)
            return TextColumns([pc.filter(column, mask) for column in self.columns])
        positions = pa.array(index.astype(np.int64, copy=False))
        return TextColumns([pc.take(column, positions) for column in self.columns])

    def floats(self) -> npt.NDArray[np.float64]:
        """The values as floats (correctly rounded, like ``float(text)``), for whoever needs them."""
        result = np.empty((len(self), len(self.columns)), dtype=np.float64)
        for j, column in enumerate(self.columns):
            result[:, j] = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        return result


@dataclass
class WireMessages:
    """Every message of a block, encoded at once; ``batch()`` cuts batches out of it.

    ``texts`` is an Arrow string array whose values each end in a newline, so the bytes of any run of
    messages are one slice of its data buffer: a batch's payload costs one copy, not a join."""

    texts: pa.Array
    key_codes: npt.NDArray[np.int32]
    keys: tuple[bytes, ...]
    ts_ns: npt.NDArray[np.int64]

    def batch(self, index: Any, schedule_ns: npt.NDArray[np.int64] | None = None) -> WireBatch:
        """Messages ``index`` (a slice, or positions: disorder reorders, drops and repeats)."""
        if isinstance(index, slice):
            start, stop, _ = index.indices(len(self.key_codes))
            texts = self.texts.slice(start, max(0, stop - start))
        else:
            texts = pc.take(self.texts, pa.array(np.asarray(index, dtype=np.int64)))
        key_codes = self.key_codes[index]
        schedule = self.ts_ns[index] if schedule_ns is None else schedule_ns
        if len(texts) == 0:
            return WireBatch(b"", key_codes, self.keys, np.asarray(schedule, dtype=np.int64))
        _, offsets_buffer, data_buffer = texts.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)
        first = int(offsets[texts.offset])
        last = int(offsets[texts.offset + len(texts)])
        payload = data_buffer[first:last].to_pybytes()
        return WireBatch(payload, key_codes, self.keys, np.asarray(schedule, dtype=np.int64))


def _string_array(texts: npt.NDArray[np.bytes_]) -> pa.Array:
    """A numpy bytes array as an Arrow string array; without a Python object per text when all
    texts fill the array's width (numpy pads shorter ones with NULs)."""
    width = texts.dtype.itemsize
    if width == 0 or (np.strings.str_len(texts) != width).any():
        return pa.array(texts.astype(object), type=pa.binary()).cast(pa.string())
    offsets = np.arange(len(texts) + 1, dtype=np.int32) * width
    data = np.ascontiguousarray(texts).view(np.uint8)
    return pa.StringArray.from_buffers(len(texts), pa.py_buffer(offsets), pa.py_buffer(data))


def encode_texts(
    station_codes: npt.NDArray[np.integer[Any]],
    stations: Sequence[str],
    ts_ns: npt.NDArray[np.int64],
    texts: TextColumns,
    sensors: Sequence[str],
) -> WireMessages:
    """Every row's message, like ``encode_block``'s, with each number copied from the CSV's own text.

    Row i is station ``stations[station_codes[i]]``. Why: parsing floats and formatting them again,
    or a Python object per value, was most of a replay's CPU. Here one Arrow call joins, per row, the
    station's prefix, the timestamp's piece (each formatted once per distinct value), the number
    texts and the constant key pieces between them. The numbers are byte-for-byte the file's
    (``509.90`` stays ``509.90``), so the JSON parses to the same floats as
    ``Reading.to_json_bytes()`` would carry, not always to the same bytes.
    """
    keys = tuple(station.encode() for station in stations)
    codes = np.asarray(station_codes, dtype=np.int32)
    n = len(codes)
    if n == 0:
        return WireMessages(pa.array([], type=pa.string()), codes, keys, np.asarray(ts_ns, dtype=np.int64))
    quoted = [orjson.dumps(name).decode() for name in sensors]
    prefixes = pa.array([f'{{"station_id":"{station}","ts":"' for station in stations], type=pa.string())
    ts_codes, ts_uniques = pd.factorize(ts_ns)
    ts_pieces = _string_array(format_timestamps(np.asarray(ts_uniques), b'",' + quoted[0].encode() + b":"))
    parts: list[Any] = [
        pc.take(prefixes, pa.array(codes)),
        pc.take(ts_pieces, pa.array(ts_codes.astype(np.int32, copy=False))),
        texts.columns[0],
    ]
    for name, column in zip(quoted[1:], texts.columns[1:], strict=True):
        parts += [f",{name}:", column]
    parts += ["}\n", ""]  # the last argument is the separator
    joined = pc.binary_join_element_wise(*parts)
    return WireMessages(joined, codes, keys, np.asarray(ts_ns, dtype=np.int64))
