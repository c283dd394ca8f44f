"""``bench line``: readings/s of the service's line work alone (no Kafka), against the bare monitor.

Input: the readings of ``bench detector``'s line variant (one simulated line of
``bench.detector.LINE_STATIONS`` stations, normal operation, repeated under the names of every line
of ``bench.detector.bench_topology``: ``bench.detector.STATIONS`` stations, one-minute readings).

- ``readings_per_s``: what the service does with them per batch of ``BATCH`` readings (its
  ``max_batch``), in one thread: group by line and encode the line records (``_forward``), decode
  them (``_take_line_record``), ``LineTable.add_rows``, ``LineTable.release`` (each line's monitor
  fed in event-time order, advanced after every reading) and the state record of every line that
  moved (``_record_line_state``);
- ``monitor_only_per_s`` (baseline): one ``LineMonitor`` per line fed the same readings, already
  parsed, in event-time order (the loop of ``detector.line.offline.line_alerts``, the oracle,
  without its final flush: the table holds the last minutes back too), so the ratio
  ``table_vs_monitor_only`` is what the table, the line records and the state records cost on top
  of the detection itself. Both raise the same alerts (checked).
- ``segment_step_share``: the share of ``readings_per_s``'s time spent in ``SegmentState.step``
  (timed in a separate run; the detection statistic's own cost).
- ``state_record_bytes``: the mean size of a line's state record (one per line and batch that moved
  it, the same transaction as the batch's offsets in the service); ``state_bytes_per_reading``: all
  of them over the readings (compare: a reading's own message is about 200 bytes).

Times are CPU seconds of this process (``time.process_time``), not wall time: the work is one
thread of pure Python, and on a shared machine wall time mostly measures the neighbours.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from bench.detector import STATIONS, bench_topology, line_readings
from bench.record import BenchResult, rate
from detector.line import LineCalibration, LineMonitor
from detector.line.segment import SegmentState
from detector.line_table import LineTable
from detector.records import decode_line_readings, encode_line_readings, encode_state
from detector.testing import LINE_SENSORS
from detector.topology import TOPOLOGY_FORMAT, Topology

MINUTES = 1000
QUICK_MINUTES = 200
BATCH = 5000  # the service's default max_batch
REPETITIONS = 3

Row = tuple[str, str, float, tuple[float, ...]]  # line, station, Unix seconds, LINE_SENSORS values


def parsed_rows(topology: Topology, minutes: int) -> list[Row]:
    stations = [f"ST-{i:05d}" for i in range(STATIONS)]
    rows: list[Row] = []
    for _key, body in line_readings(stations, minutes):
        reading = orjson.loads(body)
        station_id = reading["station_id"]
        ts = datetime.fromisoformat(reading["ts"]).timestamp()
        line_id = topology.line_of(station_id)
        assert line_id is not None
        rows.append((line_id, station_id, ts, tuple(float(reading[f]) for f in LINE_SENSORS)))
    return rows


def table_run(topology: Topology, calibration: LineCalibration, rows: Sequence[Row]) -> tuple[float, int]:
    """Seconds of the service's line work over ``rows`` in batches of ``BATCH``, and the alerts."""
    seconds, alerts, _ = table_run_with_state(topology, calibration, rows)
    return seconds, alerts


def table_run_with_state(
    topology: Topology, calibration: LineCalibration, rows: Sequence[Row]
) -> tuple[float, int, list[int]]:
    """``table_run``, and the size (bytes) of every line state record it wrote."""
    table = LineTable(topology, calibration, model_version="bench", idle_timeout_s=1e9)
    written: dict[str, bytes] = {}
    sizes: list[int] = []
    alerts = 0
    started = time.process_time()
    for first in range(0, len(rows), BATCH):
        by_line: dict[str, list[tuple[str, float, tuple[float, ...]]]] = defaultdict(list)
        for line_id, station_id, ts, values in rows[first : first + BATCH]:
            by_line[line_id].append((station_id, ts, values))
        records = {line_id: encode_line_readings(LINE_SENSORS, got) for line_id, got in by_line.items()}
        for line_id, raw in records.items():
            fields, decoded = decode_line_readings(raw)
            table.add_rows(line_id, fields, decoded, 0.0)
        alerts += len(table.release(0.0))
        for line_id in table.take_changed():
            value = encode_state(table.snapshot(line_id))
            assert value is not None
            if value != written.get(line_id):
                written[line_id] = value
                sizes.append(len(value))
    return time.process_time() - started, alerts, sizes


def monitor_run(topology: Topology, calibration: LineCalibration, rows: Sequence[Row]) -> tuple[float, int]:
    """Seconds of the offline oracle over the same readings, one monitor per line, and the alerts."""
    by_line: dict[str, list[tuple[str, datetime, dict[str, float]]]] = defaultdict(list)
    for line_id, station_id, ts, values in sorted(rows, key=lambda row: (row[2], row[1])):
        by_line[line_id].append(
            (station_id, datetime.fromtimestamp(ts, UTC), dict(zip(LINE_SENSORS, values, strict=True)))
        )
    alerts = 0
    started = time.process_time()
    for decl in topology.lines:
        own = Topology.from_dict({"format": TOPOLOGY_FORMAT, "line": [decl.model_dump(mode="json")]})
        alerts += len(_unflushed(by_line[decl.id], own, calibration))
    return time.process_time() - started, alerts


def _unflushed(
    readings: list[tuple[str, datetime, dict[str, float]]], topology: Topology, calibration: LineCalibration
) -> list[Any]:
    monitor = LineMonitor(topology, calibration, model_version="bench")
    alerts: list[Any] = []
    for station_id, ts, values in readings:
        monitor.add(station_id, ts, values)
        alerts.extend(monitor.advance())
    return alerts


def step_share(topology: Topology, calibration: LineCalibration, rows: Sequence[Row]) -> float:
    """The share of ``table_run``'s time inside ``SegmentState.step``."""
    original: Callable[..., Any] = SegmentState.step
    inside = 0.0

    def timed(self: SegmentState, *args: Any, **kwargs: Any) -> Any:
        nonlocal inside
        began = time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            inside += time.process_time() - began

    SegmentState.step = timed  # type: ignore[method-assign]
    try:
        seconds, _ = table_run(topology, calibration, rows)
    finally:
        SegmentState.step = original  # type: ignore[method-assign]
    return inside / seconds


def run(quick: bool) -> BenchResult:
    minutes = QUICK_MINUTES if quick else MINUTES
    topology, calibration = bench_topology([f"ST-{i:05d}" for i in range(STATIONS)])
    rows = parsed_rows(topology, minutes)
    table_s: list[float] = []
    monitor_s: list[float] = []
    for _ in range(REPETITIONS):
        seconds, table_alerts, state_sizes = table_run_with_state(topology, calibration, rows)
        table_s.append(seconds)
        seconds, monitor_alerts = monitor_run(topology, calibration, rows)
        monitor_s.append(seconds)
        if table_alerts != monitor_alerts:
            raise AssertionError(f"the table raised {table_alerts} alerts, the oracle {monitor_alerts}")
    table_rate = rate(len(rows), statistics.median(table_s))
    monitor_rate = rate(len(rows), statistics.median(monitor_s))
    return BenchResult(
        name="line",
        figures={
            "readings_per_s": table_rate,
            "us_per_reading": 1e6 / table_rate,
            "segment_step_share": step_share(topology, calibration, rows),
            "state_record_bytes": statistics.mean(state_sizes),
            "state_bytes_per_reading": sum(state_sizes) / len(rows),
        },
        baseline={"monitor_only_per_s": monitor_rate},
        ratio={"table_vs_monitor_only": table_rate / monitor_rate},
        notes=(
            f"{len(rows)} readings of {STATIONS} stations in lines of {len(topology.lines[0].station)} "
            f"({minutes} one-minute readings each), batches of {BATCH}, one thread, no Kafka, CPU "
            f"time. Medians of {REPETITIONS}; segment_step_share from one more run with "
            "SegmentState.step timed."
        ),
    )
