"""``centinela bench buffers``: memory of the per-station window buffer at 10,000 stations.

Each station's buffer is filled past its first window (the ring fully populated, as in steady
state) and kept in a dict keyed by station id, the way the service holds them. The figure is the
Python heap growth (tracemalloc) divided by the number of stations; it includes the numpy arrays,
the buffer object and its dict entry, not the station id strings (the consumer owns those anyway).
"""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime, timedelta

import numpy as np

from bench.record import BenchResult, median_of
from detector.readings import DEFAULT_SENSORS
from detector.windows import StationBuffer, WindowSpec

START = datetime(2025, 1, 1, tzinfo=UTC)
TARGET_BYTES = 4096


def bytes_per_station(stations: int, minutes: int = 40) -> float:
    spec = WindowSpec()
    row = np.ones(len(DEFAULT_SENSORS), dtype=np.float32)
    names = [f"EST-{i:05d}" for i in range(stations)]
    times = [START + timedelta(minutes=m) for m in range(minutes)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    buffers: dict[str, StationBuffer] = {}
    for name in names:
        buffer = StationBuffer(spec, len(DEFAULT_SENSORS))
        for ts in times:
            buffer.add(ts, row)
            watermark = buffer.watermark
            if watermark is not None:
                buffer.close_until(watermark)
        buffers[name] = buffer
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(buffers) == stations
    return (after - before) / stations


def run(quick: bool) -> BenchResult:
    stations = 1_000 if quick else 10_000
    per_station = median_of(3, lambda: bytes_per_station(stations))
    return BenchResult(
        name="buffers",
        figures={"bytes_per_station": per_station, "stations": float(stations)},
        targets={"bytes_per_station": f"<= {TARGET_BYTES:,}"},
        notes=(
            "StationBuffer, default WindowSpec (30 min / 5 min / 1 min sampling, fill 5, lateness 2), "
            f"and {len(DEFAULT_SENSORS)} sensors; tracemalloc heap growth per station, median of 3."
        ),
    )
