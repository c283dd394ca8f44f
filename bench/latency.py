"""``bench latency``: from the reading that closes a window to that window's score record, live pace.

1,000 stations send one-minute readings replayed at 60× (so 1,000 readings per second, spread evenly
over each second). The first 32 minutes go in at full speed, before the clock starts, so windows
are ready to close; then ``MINUTES`` minutes are paced. ``centinela detect`` runs as its own process
(exactly-once, the LSTM 128-64 autoencoder as in ``bench scoring``) and publishes a score record per
window on the scores topic.

Latency of one window = produce time of its score record (Kafka CreateTime, set by the detector's
producer) minus the produce time of the reading that closed it (the station's reading at
``window end + allowed lateness``, whose timestamp this benchmark sets when producing it). Both
clocks are this machine's. Figures: p50 and p99 over every window closed during the paced minutes,
medians over repetitions.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.detector import broker, topics
from bench.record import BenchResult
from detector.readings import format_ts
from detector.testing import SEED_MEAN, SEED_SCALE
from detector.windows import WindowSpec
from stream.testing import START
from trainer.testing import build_keras_bundle

logger = logging.getLogger(__name__)

STATIONS = 1000
WARMUP_MINUTES = 32
MINUTES = 30
QUICK_MINUTES = 10
REPETITIONS = 3
QUICK_REPETITIONS = 1
SPEED = 60.0
SENSORS = ("flow", "pressure", "pump_rpm", "tank_level", "power")
ROOT = Path(__file__).resolve().parents[1]


def minute_messages(minute: int, rng: np.random.Generator) -> list[tuple[bytes, bytes]]:
    stamp = format_ts(START + timedelta(minutes=minute))
    values = np.asarray(SEED_MEAN) + rng.standard_normal((STATIONS, len(SENSORS))) * np.asarray(SEED_SCALE)
    out = []
    for station, row in enumerate(values.tolist()):
        station_id = f"LAT-{station:04d}"
        body: dict[str, object] = {"station_id": station_id, "ts": stamp}
        body.update(zip(SENSORS, row, strict=True))
        out.append((station_id.encode(), orjson.dumps(body)))
    return out


def start_detector(
    bootstrap: str, made: list[str], bundle: Path, log_path: Path, group: str | None = None
) -> subprocess.Popen[bytes]:
    readings, scores, alerts, dlq = made
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTINELA_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CENTINELA_TOPICS__READINGS": readings,
        "CENTINELA_TOPICS__SCORES": scores,
        "CENTINELA_TOPICS__ALERTS": alerts,
        "CENTINELA_TOPICS__DLQ": dlq,
        "CENTINELA_GROUP_ID": group or f"bench-latency-{uuid.uuid4().hex[:8]}",
        "CENTINELA_INSTANCE_ID": f"bench-latency-{uuid.uuid4().hex[:8]}",
        "CENTINELA_BUNDLE_PATH": str(bundle),
        "CENTINELA_METRICS_ENABLED": "false",
        "CENTINELA_WATCH_BUNDLE": "false",
    }
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "centinela", "detect"], env=env, cwd=ROOT, stdout=log_file, stderr=log_file
        )


def one_run(bootstrap: str, bundle: Path, minutes: int, log_path: Path) -> list[float]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    rng = np.random.default_rng(7)
    spec = WindowSpec()
    with topics(bootstrap, 4, "lat-readings", "lat-scores", "lat-alerts", "lat-dlq") as made:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "log_level": 3})
        for minute in range(WARMUP_MINUTES):
            for key, value in minute_messages(minute, rng):
                producer.produce(made[0], value=value, key=key)
            producer.poll(0)
        producer.flush(60)
        detector = start_detector(bootstrap, made, bundle, log_path)
        try:
            time.sleep(8.0)  # start, join the group, catch up with the warm-up minutes
            sent_ms = np.zeros((WARMUP_MINUTES + minutes, STATIONS), dtype=np.int64)
            began = time.time() + 0.5
            per_reading = 1.0 / (STATIONS * SPEED / 60.0)
            for offset in range(minutes):
                minute = WARMUP_MINUTES + offset
                messages = minute_messages(minute, rng)
                for index, (key, value) in enumerate(messages):
                    due = began + (offset * STATIONS + index) * per_reading
                    pause = due - time.time()
                    if pause > 0.002:
                        time.sleep(pause)
                    now_ms = int(time.time() * 1000)
                    producer.produce(made[0], value=value, key=key, timestamp=now_ms)
                    sent_ms[minute, index] = now_ms
                    if index % 50 == 0:
                        producer.poll(0)
            producer.flush(30)
            time.sleep(3.0)  # the last windows' records
        finally:
            detector.terminate()
            detector.wait(30)
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "log_level": 3,
            }
        )
        consumer.assign([TopicPartition(made[1], 0, 0)])
        latencies: list[float] = []
        lateness = spec.allowed_lateness // timedelta(minutes=1)
        idle = 0
        while idle < 5:
            batch = consumer.consume(5000, 0.5)
            idle = 0 if batch else idle + 1
            for message in batch:
                if message.error() is not None:
                    continue
                record = orjson.loads(message.value() or b"{}")
                station = int(record["station_id"].split("-")[1])
                end_minute = int(
                    (
                        np.datetime64(record["window_end"].rstrip("Z"))
                        - np.datetime64(START.replace(tzinfo=None))
                    )
                    / np.timedelta64(1, "m")
                )
                closing = end_minute + lateness
                if WARMUP_MINUTES <= closing < WARMUP_MINUTES + minutes and sent_ms[closing, station]:
                    latencies.append(float(message.timestamp()[1] - sent_ms[closing, station]))
        consumer.close()
    return latencies


def run(quick: bool) -> BenchResult:
    load_before = os.getloadavg()[0]
    minutes = QUICK_MINUTES if quick else MINUTES
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    p50s: list[float] = []
    p99s: list[float] = []
    counts: list[int] = []
    with tempfile.TemporaryDirectory() as folder, broker() as bootstrap:
        bundle = build_keras_bundle(Path(folder) / "lstm", units=(128, 64), seed=0)
        log_path = Path(folder) / "detector.log"
        for repetition in range(repetitions):
            logger.info("latency repetition %d", repetition + 1)
            latencies = one_run(bootstrap, bundle, minutes, log_path)
            if not latencies:
                tail = log_path.read_text()[-2000:]
                raise RuntimeError(f"no score records came back; detector log ends with:\n{tail}")
            values: Any = np.asarray(latencies)
            p50s.append(float(np.percentile(values, 50)))
            p99s.append(float(np.percentile(values, 99)))
            counts.append(len(latencies))
    return BenchResult(
        name="latency",
        figures={"p50_ms": statistics.median(p50s), "p99_ms": statistics.median(p99s)},
        targets={"p99_ms": "< 250"},
        notes=(
            f"{STATIONS} stations x 1 reading/s (one-minute readings at {SPEED:g}x), {minutes} paced "
            f"minutes per run after {WARMUP_MINUTES} warm-up minutes, {repetitions} run(s), "
            f"windows per run {counts}; "
            "centinela detect as a subprocess, exactly-once, LSTM 128-64 (ONNX, 2 threads). "
            f"1-minute load average before/after: {load_before:.2f}/{os.getloadavg()[0]:.2f} on "
            f"{os.cpu_count()} cores (a shared machine)."
        ),
    )
