"""The fast path for a block of plain CSV lines: one compiled pass instead of Arrow, RE2 and pandas.

``replay/_gridcsv.c`` reads a block once and either recognises every line as certainly good (the
header's field count, printable ASCII, no quotes, an ISO 8601 UTC timestamp in a common spelling, a
valid station id, sensor fields that are plain JSON numbers of at most ``MAX_TEXT_NUMBER_CHARS``
characters) or declines the whole block. A declined block goes through ``CsvSource._arrow_block``
and pandas exactly as before, so this path never decides what a bad row is: it only produces, for
blocks that are all good, the same timestamps, stations and number texts as the Arrow path does
(``tests/unit/replay/test_grid_block.py`` checks that on generated and adversarial blocks).

Why: parsing, the RE2 check and the timestamp parse were about half of a replay helper's CPU, and
the helper's CPU is what a flat-out replay competes with the producer and the broker for on 2 cores.

The extension is optional (``pyproject.toml``); without it ``available()`` is False and every block
takes the Arrow path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pyarrow as pa

_kernel: ModuleType | None
try:
    import replay._gridcsv as _compiled

    _kernel = _compiled
except ImportError:  # built without a C compiler
    _kernel = None


def available() -> bool:
    return _kernel is not None


@dataclass(frozen=True)
class GridColumns:
    """Where things are in a line: field indices (``station_field`` -1 when there is none)."""

    n_fields: int
    timestamp_field: int
    station_field: int
    sensor_fields: tuple[int, ...]
    max_number_chars: int


@dataclass
class GridBlock:
    rows: int
    ts_ns: npt.NDArray[np.int64]
    station_codes: npt.NDArray[np.int32]
    stations: list[str]
    texts: list[pa.Array]


# The shortest line the parser accepts has a 19-character timestamp: a bound on a block's lines
# without counting them first.
_SHORTEST_TIMESTAMP = 19


def line_capacity(data: bytes, columns: GridColumns) -> int:
    """At most how many lines of ``columns``'s layout ``data`` can hold."""
    shortest = _SHORTEST_TIMESTAMP + (columns.n_fields - 1) + len(columns.sensor_fields) + 1
    shortest += 1 if columns.station_field >= 0 else 0
    return len(data) // shortest + 1


def parse_grid(data: bytes, columns: GridColumns) -> GridBlock | None:
    """The block's rows, or None when any line is not plain (or the extension is missing).

    ``data`` is whole lines, ending in a newline."""
    if _kernel is None or not data:
        return None
    capacity = line_capacity(data, columns)
    n_sensors = len(columns.sensor_fields)
    ts_ns = np.empty(capacity, dtype=np.int64)
    codes = np.zeros(capacity, dtype=np.int32)
    offsets = np.empty(n_sensors * (capacity + 1), dtype=np.int32)
    # Every accepted number has at most max_number_chars characters: a column's texts fit in
    # capacity * max_number_chars bytes (a few MB, which the helper's allocator reuses block to block).
    region = capacity * columns.max_number_chars
    texts = np.empty(n_sensors * region, dtype=np.uint8)
    found = _kernel.parse(
        data,
        capacity,
        columns.n_fields,
        columns.timestamp_field,
        columns.station_field,
        columns.sensor_fields,
        columns.max_number_chars,
        ts_ns,
        codes,
        offsets,
        texts,
    )
    if found is None:
        return None
    rows, starts, lengths = found
    stations = [
        data[start : start + length].decode("ascii") for start, length in zip(starts, lengths, strict=True)
    ]
    arrays = []
    for j in range(n_sensors):
        column_offsets = offsets[j * (capacity + 1) : j * (capacity + 1) + rows + 1]
        used = int(column_offsets[-1])
        column_texts = texts[j * region : j * region + used]
        arrays.append(
            pa.StringArray.from_buffers(rows, pa.py_buffer(column_offsets), pa.py_buffer(column_texts))
        )
    return GridBlock(rows, ts_ns[:rows], codes[:rows], stations, arrays)


def grid_columns(
    header: Sequence[str], timestamp: str, station: str | None, sensors: Sequence[str], max_chars: int
) -> GridColumns:
    position = {name: index for index, name in enumerate(header)}
    return GridColumns(
        n_fields=len(header),
        timestamp_field=position[timestamp],
        station_field=position[station] if station is not None else -1,
        sensor_fields=tuple(position[column] for column in sensors),
        max_number_chars=max_chars,
    )
