"""``bench replay``: ``replay_csv`` at ``--speed max`` from a 1 M-row CSV, next to a bare producer loop.

The CSV has the simulator's layout (timestamp, station_id, seven sensors, label, event_id; six
stations, one-minute readings), generated with a fixed seed. The baseline is a plain confluent-kafka
``produce()`` loop sending exactly the bytes the replay sends (the replay's own encoder builds them
before the clock starts), with the same producer settings, keys and partition count, timed from
creating the producer to the end of its flush. The replay is timed the same way, around the whole
``replay_csv`` call: helper process, CSV parsing, validation, JSON, produce, flush. Each repetition
runs all three (below), back to back in rotating order, on fresh 6-partition topics; figures are
medians of 5 (3 with ``--quick``), ratios are medians of the per-repetition ratios.

``sender_only_readings_per_s`` is the replay's sending loop fed with batches prepared before the
clock starts (split, produce, flush: what remains when parsing runs on a core of its own), against
the same bare loop (``sender_only_vs_bare``). CPU per reading is reported beside the rates
(``sender_cpu_us_per_reading``: the sending process with librdkafka's threads;
``helper_cpu_us_per_reading``: the parsing and encoding helper; ``bare_cpu_us_per_reading``: the
bare loop): on a machine whose cores are all busy, rates follow total CPU.

Pacing: ten minutes of the same file at ``--speed 60`` (two with ``--quick``) must take ten seconds;
``pacing_error_pct`` is the relative error of the time from the first reading sent to the last.
"""

from __future__ import annotations

import logging
import resource
import statistics
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bench.record import BenchResult, Stopwatch, rate
from bench.topics import create_bench_topic, delete_bench_topic
from detector.errors import BrokerError
from devtools import broker as local_broker
from replay.csv_source import SourceOptions
from replay.disorder import DisorderOptions
from replay.prepare import prepare_file
from replay.producer import KafkaSink, ReplayOptions, producer_config, replay_csv
from replay.producer import run as run_replay

logger = logging.getLogger(__name__)

ROWS = 1_000_000
QUICK_ROWS = 200_000
STATIONS = 6
PARTITIONS = 6
REPETITIONS = 5
QUICK_REPETITIONS = 3
PACING_MINUTES = 10
QUICK_PACING_MINUTES = 2
PACING_SPEED = 60.0
SEND_SLICE = 16384


def write_csv(path: Path, rows: int, stations: int = STATIONS, seed: int = 20250101) -> Path:
    """A simulator-layout CSV: ``rows`` readings, ``stations`` stations, one minute apart."""
    rng = np.random.default_rng(seed)
    minutes = rows // stations
    ts = pd.date_range("2025-01-01", periods=minutes, freq="min", tz="UTC")
    frame = pd.DataFrame(
        {
            "timestamp": np.repeat(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(), stations),
            "station_id": np.tile([f"EST-{i + 1:02d}" for i in range(stations)], minutes),
        }
    )
    anchors = {
        "flow": 500.0,
        "pressure": 70.0,
        "pump_rpm": 1800.0,
        "tank_level": 15.0,
        "power": 400.0,
        "suction_pressure": 5.0,
        "temperature": 25.0,
    }
    for name, anchor in anchors.items():
        frame[name] = np.round(rng.normal(anchor, anchor * 0.01, len(frame)), 3)
    frame["label"] = 0
    frame["event_id"] = ""
    frame.to_csv(path, index=False)
    return path


def bare_produce(
    config: dict[str, object], topic: str, values: Sequence[bytes], keys: Sequence[bytes]
) -> float:
    """Messages per second of a plain produce loop over ready bytes, until the flush returns."""
    from confluent_kafka import Producer

    failures: list[str] = []

    def on_error(error: object, message: object) -> None:
        if error is not None:
            failures.append(str(error))

    with Stopwatch() as watch:
        producer = Producer({**config, "on_delivery": on_error})
        produce, poll = producer.produce, producer.poll
        for start in range(0, len(values), SEND_SLICE):
            for value, key in zip(
                values[start : start + SEND_SLICE], keys[start : start + SEND_SLICE], strict=True
            ):
                try:
                    produce(topic, value, key)
                except BufferError:
                    poll(0.05)
                    produce(topic, value, key)
            poll(0)
        left = producer.flush(120)
    if left or failures:
        raise BrokerError(f"bare loop: {left} undelivered, {len(failures)} failed ({failures[:3]})")
    return rate(len(values), watch.seconds)


def paced_run(path: Path, client_config: dict[str, object], minutes: int) -> tuple[float, float]:
    """(expected, measured) seconds from the first reading sent to the last, at PACING_SPEED."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    options = ReplayOptions(
        source=SourceOptions(start=start, end=start + timedelta(minutes=minutes, seconds=1)),
        speed=PACING_SPEED,
        partitions=PARTITIONS,
    )
    bootstrap = str(client_config["bootstrap.servers"])
    topic = create_bench_topic(bootstrap, "bench.replay.pacing", PARTITIONS)
    try:
        summary = replay_csv(path, topic, options, client_config)
    finally:
        delete_bench_topic(bootstrap, topic)
    if summary.delivered != (minutes + 1) * STATIONS:
        raise BrokerError(f"paced run delivered {summary.delivered} readings, not {(minutes + 1) * STATIONS}")
    return minutes * 60 / PACING_SPEED, summary.send_span_s


def _cpu_seconds() -> tuple[float, float]:
    """CPU of this process (all its threads, librdkafka's included) and of its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def run(quick: bool) -> BenchResult:
    rows = QUICK_ROWS if quick else ROWS
    readings: list[float] = []
    bare: list[float] = []
    bare_cpu: list[float] = []
    sender_cpu: list[float] = []
    helper_cpu: list[float] = []
    sender_only: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as folder:
        path = write_csv(Path(folder) / "readings.csv", rows)
        values: list[bytes] = []
        keys: list[bytes] = []
        prepared = list(prepare_file(path, SourceOptions(), DisorderOptions(), 1))
        for block in prepared:
            values.extend(block.batch.messages())
            keys.extend(block.batch.key_list())
        with local_broker.provide() as broker:
            client_config: dict[str, object] = {"bootstrap.servers": broker.bootstrap}
            options = ReplayOptions(partitions=PARTITIONS)
            config = producer_config(client_config, options.compression, options.linger_ms)
            repetitions = QUICK_REPETITIONS if quick else REPETITIONS
            for repetition in range(repetitions):
                # Rotate which goes first, so a slow spell of the shared machine or the broker's
                # cleanup of the previous topic does not always fall on the same side.
                sides = ("bare", "replay", "sender")
                order = sides[repetition % 3 :] + sides[: repetition % 3]
                for side in order:
                    topic = create_bench_topic(broker.bootstrap, f"bench.replay.{side}", PARTITIONS)
                    try:
                        before = _cpu_seconds()
                        with Stopwatch() as watch:
                            if side == "bare":
                                bare.append(bare_produce(config, topic, values, keys))
                            elif side == "replay":
                                summary = replay_csv(path, topic, options, client_config)
                            else:
                                summary = run_replay(prepared, KafkaSink(topic, config), speed=None)
                        after = _cpu_seconds()
                    finally:
                        delete_bench_topic(broker.bootstrap, topic)
                    if side == "bare":
                        bare_cpu.append((after[0] - before[0]) / len(values) * 1e6)
                        continue
                    if summary.delivered != len(values) or summary.delivery_errors:
                        raise BrokerError(f"{side} delivered {summary.delivered} of {len(values)}")
                    if side == "sender":
                        sender_only.append(rate(summary.delivered, watch.seconds))
                        continue
                    readings.append(rate(summary.delivered, watch.seconds))
                    sender_cpu.append((after[0] - before[0]) / len(values) * 1e6)
                    helper_cpu.append((after[1] - before[1]) / len(values) * 1e6)
                logger.info(
                    "repetition %d: replay %.0f/s, sender alone %.0f/s, bare %.0f/s",
                    repetition + 1,
                    readings[-1],
                    sender_only[-1],
                    bare[-1],
                )
            minutes = QUICK_PACING_MINUTES if quick else PACING_MINUTES
            expected, measured = paced_run(path, client_config, minutes)
            describe = broker.describe()
    ratios = [r / b for r, b in zip(readings, bare, strict=True)]
    sender_ratios = [r / b for r, b in zip(sender_only, bare, strict=True)]
    return BenchResult(
        name="replay",
        figures={
            "readings_per_s": statistics.median(readings),
            "sender_only_readings_per_s": statistics.median(sender_only),
            "pacing_expected_s": expected,
            "pacing_measured_s": measured,
            "pacing_error_pct": 100 * (measured - expected) / expected,
            "sender_cpu_us_per_reading": statistics.median(sender_cpu),
            "helper_cpu_us_per_reading": statistics.median(helper_cpu),
            # With the figures, not the baseline: the README's table prints baselines as whole numbers.
            "bare_cpu_us_per_reading": statistics.median(bare_cpu),
        },
        baseline={"bare_produce_per_s": statistics.median(bare)},
        # Each repetition's replay and bare loop ran back to back: the median of their ratios is
        # steadier on a shared machine than the ratio of the two medians.
        ratio={
            "readings_vs_bare": statistics.median(ratios),
            "sender_only_vs_bare": statistics.median(sender_ratios),
        },
        targets={
            "readings_per_s": ">= 200,000",
            "readings_vs_bare": ">= 0.7",
            "pacing_error_pct": "within ±2",
        },
        notes=(
            f"{describe}; {rows:,}-row simulator-layout CSV ({STATIONS} stations), {PARTITIONS} partitions, "
            f"idempotent producer, lz4, linger {options.linger_ms} ms; medians of {repetitions} "
            f"(replay {', '.join(f'{v:,.0f}' for v in readings)}; "
            f"sender alone {', '.join(f'{v:,.0f}' for v in sender_only)}; "
            f"bare {', '.join(f'{v:,.0f}' for v in bare)}; "
            f"per-repetition ratios {', '.join(f'{v:.2f}' for v in ratios)}); pacing: {minutes} min of data "
            f"at {PACING_SPEED:g}x"
        ),
    )
