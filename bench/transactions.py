"""``bench transactions``: what exactly-once costs in throughput, and how fast a killed detector is back.

Throughput, on one topic of one-minute readings, each repetition on a fresh consumer group:

- ``readings_per_s_exactly_once``: the detector end to end (``bench.detector.end_to_end``) with
  ``exactly_once = true``: every batch's score records and alerts in one Kafka transaction together
  with its offsets;
- ``readings_per_s_at_least_once`` (the baseline): the same with ``exactly_once = false``: produce,
  flush, then a synchronous offset commit per batch.

The two alternate so drift on a shared machine falls on both. The model is the linear stand-in
(scoring nearly free): the service's own per-batch costs, where a transaction weighs most, are all
that is measured. With the LSTM model scoring dominates and the ratio is closer to 1.

Recovery: ``centinela detect`` (a real process, exactly-once) reads the first half of a replay with
thefts-like anomalies and is killed with SIGKILL; the second half, with an anomaly near its start, is
produced; the process is started again with the same instance id, as a supervisor restarts it.
``recovery_s_to_first_alert`` is from that start to the first new alert committed on the alerts
topic (``read_committed``); ``recovery_s_to_assignment`` to its "assigned partitions" log line.
"""

from __future__ import annotations

import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.detector import broker, detector_settings, end_to_end, make_series, produce_all, topics
from bench.record import BenchResult
from detector.bundle import load_bundle
from detector.onnx_runtime import onnx_scorers
from devtools.stand_ins import build_linear_bundle
from kafkakit.read import committed_to_end
from stream.testing import interleave, normal_series

logger = logging.getLogger(__name__)

STATIONS = 200
MINUTES = 600
QUICK_MINUTES = 120
PARTITIONS = 4
REPETITIONS = 3
SENSORS = ("flow", "pressure", "pump_rpm", "tank_level", "power")
RECOVERY_STATIONS = 20
RECOVERY_MINUTES = 600
_QUIET = {"log_level": 3}


def throughput(bootstrap: str, bundle_dir: Path, minutes: int) -> tuple[list[float], list[float]]:
    """Readings/s with and without transactions, ``REPETITIONS`` each, alternating."""
    bundle = load_bundle(bundle_dir, reconstructor_factory=onnx_scorers(threads=2, max_batch=256))
    messages = interleave(make_series(STATIONS, minutes), SENSORS)
    exactly: list[float] = []
    at_least: list[float] = []
    with topics(bootstrap, PARTITIONS, "readings", "scores", "alerts", "dlq") as made:
        readings, scores, alerts, dlq = made
        produce_all(bootstrap, readings, messages)
        for repetition in range(REPETITIONS):
            for exactly_once, figures in ((True, exactly), (False, at_least)):
                settings = detector_settings(
                    bootstrap, readings, scores, alerts, dlq, exactly_once=exactly_once
                )
                figures.append(end_to_end(settings, bundle, len(messages))[0])
                logger.info(
                    "repetition %d, exactly_once=%s: %.0f readings/s",
                    repetition + 1,
                    exactly_once,
                    figures[-1],
                )
    return exactly, at_least


def _detector(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "centinela", "detect"], env=env, stdout=log_file, stderr=log_file
        )


def _alerts_reader(bootstrap: str, topic: str) -> Any:
    """A ``read_committed`` consumer positioned at the current end of ``topic``."""
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-alerts-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            **_QUIET,
        }
    )
    reader.assign([TopicPartition(topic, 0, OFFSET_END)])
    reader.consume(1, 1.0)  # resolve the end before the detector restarts
    return reader


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")


def recovery(bootstrap: str, bundle_dir: Path, work: Path) -> tuple[float, float]:
    """Seconds from a killed detector's restart to its partitions and to its first new alert."""
    half = RECOVERY_MINUTES // 2
    series = [
        normal_series(
            f"EST-{i:02d}", RECOVERY_MINUTES, seed=100 + i, anomalies=[(half + 20, half + 80, i % 5, 8.0)]
        )
        for i in range(RECOVERY_STATIONS)
    ]
    by_half = [interleave([s], SENSORS) for s in series]
    first = [m for messages in by_half for m in messages[:half]]
    second = [m for messages in by_half for m in messages[half:]]
    with topics(bootstrap, PARTITIONS, "readings", "scores", "alerts", "dlq") as made:
        readings, scores, alerts, dlq = made
        run_id = uuid.uuid4().hex[:8]
        group = f"bench-recovery-{run_id}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CENTINELA_")},
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CENTINELA_TOPICS__READINGS": readings,
            "CENTINELA_TOPICS__SCORES": scores,
            "CENTINELA_TOPICS__ALERTS": alerts,
            "CENTINELA_TOPICS__DLQ": dlq,
            "CENTINELA_GROUP_ID": group,
            "CENTINELA_INSTANCE_ID": "bench-recovery-1",
            "CENTINELA_BUNDLE_PATH": str(bundle_dir),
            "CENTINELA_METRICS_ENABLED": "false",
            "CENTINELA_WATCH_BUNDLE": "false",
            "CENTINELA_IDLE_TIMEOUT_S": "1000000",
        }
        produce_all(bootstrap, readings, first)
        killed = _detector(env, work / f"killed-{run_id}.log")
        try:
            _wait_for(
                lambda: committed_to_end(bootstrap, group, readings),  # the topic holds the first half only
                120,
                "the first half to be committed",
            )
        finally:
            killed.send_signal(signal.SIGKILL)
            killed.wait(30)
        produce_all(bootstrap, readings, second)
        reader = _alerts_reader(bootstrap, alerts)
        log_path = work / f"restarted-{run_id}.log"
        started = time.monotonic()
        restarted = _detector(env, log_path)
        assigned_s: float | None = None
        try:
            deadline = started + 300
            while time.monotonic() < deadline:
                if assigned_s is None and "assigned partitions" in log_path.read_text(errors="replace"):
                    assigned_s = time.monotonic() - started
                messages = reader.consume(10, 0.1)
                if any(m.error() is None for m in messages):
                    alerted_s = time.monotonic() - started
                    if assigned_s is None and "assigned partitions" in log_path.read_text(errors="replace"):
                        assigned_s = alerted_s  # both within the last poll
                    return assigned_s or float("nan"), alerted_s
            raise RuntimeError(f"no alert within 300 s of the restart (log: {log_path})")
        finally:
            reader.close()
            restarted.send_signal(signal.SIGTERM)
            try:
                restarted.wait(30)
            except subprocess.TimeoutExpired:
                restarted.kill()


def run(quick: bool) -> BenchResult:
    load_before = os.getloadavg()[0]
    minutes = QUICK_MINUTES if quick else MINUTES
    with tempfile.TemporaryDirectory() as folder, broker() as bootstrap:
        bundle_dir = build_linear_bundle(Path(folder) / "linear")
        exactly, at_least = throughput(bootstrap, bundle_dir, minutes)
        recoveries = [
            recovery(bootstrap, bundle_dir, Path(folder)) for _ in range(1 if quick else REPETITIONS)
        ]
    exactly_once = statistics.median(exactly)
    at_least_once = statistics.median(at_least)
    return BenchResult(
        name="transactions",
        figures={
            "readings_per_s_exactly_once": exactly_once,
            "recovery_s_to_assignment": statistics.median(r[0] for r in recoveries),
            "recovery_s_to_first_alert": statistics.median(r[1] for r in recoveries),
        },
        baseline={"readings_per_s_at_least_once": at_least_once},
        ratio={"exactly_once_vs_at_least_once": exactly_once / at_least_once},
        targets={"exactly_once_vs_at_least_once": ">= 0.8"},
        notes=(
            f"{STATIONS} stations x {minutes} one-minute readings, {PARTITIONS} partitions, linear "
            f"stand-in model (the service's own costs); medians of {REPETITIONS}, modes alternating. "
            f"Recovery: {RECOVERY_STATIONS} stations, detector SIGKILLed after the first "
            f"{RECOVERY_MINUTES // 2} minutes, restarted with the same instance id; medians of "
            f"{len(recoveries)}. Exactly-once runs: {', '.join(f'{x:.0f}' for x in exactly)}; "
            f"at-least-once: {', '.join(f'{x:.0f}' for x in at_least)}. 1-minute load average "
            f"before/after: {load_before:.2f}/{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores."
        ),
    )
