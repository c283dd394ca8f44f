"""``bench memory``: resident memory of ``centinela detect`` holding 10,000 stations.

10,000 stations × ``MINUTES`` one-minute readings go into a fresh topic; ``centinela detect`` (its own
process, exactly-once, the LSTM 128-64 autoencoder as in ``bench scoring``) reads all of them, so it
ends up with a window buffer, incident state and per-station metrics for every station and has scored
two rounds of windows. Its RSS is sampled every 0.2 s with psutil; the figure is the largest sample,
median over repetitions.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import psutil

from bench.detector import broker, topics
from bench.latency import start_detector
from bench.record import BenchResult
from detector.readings import format_ts
from detector.testing import SEED_MEAN, SEED_SCALE
from stream.testing import START
from trainer.testing import build_keras_bundle

logger = logging.getLogger(__name__)

STATIONS = 10_000
QUICK_STATIONS = 2_000
MINUTES = 40
REPETITIONS = 3
QUICK_REPETITIONS = 1
SENSORS = ("flow", "pressure", "pump_rpm", "tank_level", "power")


def produce(bootstrap: str, topic: str, stations: int) -> int:
    from confluent_kafka import Producer

    rng = np.random.default_rng(3)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "log_level": 3})
    ids = [f"MEM-{i:05d}" for i in range(stations)]
    count = 0
    for minute in range(MINUTES):
        stamp = format_ts(START + timedelta(minutes=minute))
        rows = np.asarray(SEED_MEAN) + rng.standard_normal((stations, len(SENSORS))) * np.asarray(SEED_SCALE)
        for station_id, row in zip(ids, rows.tolist(), strict=True):
            body: dict[str, object] = {"station_id": station_id, "ts": stamp}
            body.update(zip(SENSORS, row, strict=True))
            while True:
                try:
                    producer.produce(topic, value=orjson.dumps(body), key=station_id.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            count += 1
    producer.flush(120)
    return count


def consumed(bootstrap: str, group: str, topic: str) -> int:
    """Offsets the group has committed on ``topic``, summed over partitions."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 3})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(0, tp.offset) for tp in committed)
    finally:
        consumer.close()


def one_run(bootstrap: str, bundle: Path, stations: int, log_path: Path) -> float:
    """Peak RSS (MB) of the detector while it takes in every station."""
    with topics(bootstrap, 4, "mem-readings", "mem-scores", "mem-alerts", "mem-dlq") as made:
        total = produce(bootstrap, made[0], stations)
        group = f"bench-memory-{uuid.uuid4().hex[:8]}"
        process = start_detector(bootstrap, made, bundle, log_path, group=group)
        watched = psutil.Process(process.pid)
        peak = 0.0
        next_check = time.monotonic() + 2.0
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline and process.poll() is None:
                peak = max(peak, watched.memory_info().rss / 2**20)
                if time.monotonic() > next_check:
                    next_check = time.monotonic() + 2.0
                    if consumed(bootstrap, group, made[0]) >= total:
                        break
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(30)
        if consumed(bootstrap, group, made[0]) < total:
            raise RuntimeError(f"the detector did not read all {total} readings; see {log_path}")
    return peak


def run(quick: bool) -> BenchResult:
    load_before = os.getloadavg()[0]
    stations = QUICK_STATIONS if quick else STATIONS
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    peaks: list[float] = []
    with tempfile.TemporaryDirectory() as folder, broker() as bootstrap:
        bundle = build_keras_bundle(Path(folder) / "lstm", units=(128, 64), seed=0)
        for repetition in range(repetitions):
            logger.info("memory repetition %d", repetition + 1)
            peaks.append(one_run(bootstrap, bundle, stations, Path(folder) / "detector.log"))
    key = "rss_mb_10k_stations" if stations == STATIONS else f"rss_mb_{stations // 1000}k_stations"
    return BenchResult(
        name="memory",
        figures={key: statistics.median(peaks)},
        targets={key: "< 400"},
        notes=(
            f"{stations} stations x {MINUTES} one-minute readings through centinela detect (subprocess, "
            "exactly-once, LSTM 128-64 via ONNX Runtime); peak RSS sampled every 0.2 s. "
            f"Medians of {repetitions}. "
            f"1-minute load average before/after: {load_before:.2f}/{os.getloadavg()[0]:.2f}."
        ),
    )
