"""``bench detector``: readings/s and windows/s end to end through the live detector, with ceilings.

Input: one-minute readings of many stations (``STATIONS`` × ``MINUTES``), produced once into a
fresh 4-partition topic. Each repetition, on a fresh consumer group:

- ``bare_consume_per_s``: a plain confluent-kafka ``consume(5000)`` loop over the whole topic
  (the ceiling Kafka and the client give on this machine);
- ``readings_per_s`` / ``windows_per_s``: the detector (``DetectorService`` over ``KafkaBroker``,
  exactly-once: every batch's score records and alerts in one transaction with its offsets) reading
  the same topic: consume, parse, window, score, publish, commit. Timed from the partition
  assignment to the commit of the last reading;
- ``scoring_only_windows_per_s``: ``Bundle.score`` alone on the same number of windows, in batches of
  the size the detector scored on average (nothing else running).

The model is the original architecture (LSTM 128-64 autoencoder, random weights, ONNX) as in
``bench scoring``. ``readings_per_s_linear_model`` repeats the end-to-end run with a trivial linear
model, which shows what the service costs when scoring is nearly free.

With a topology (issue 18): the same stations grouped into lines of ``LINE_STATIONS`` in series,
their readings those of a simulated line (``simulator``, normal operation, one line's data
under every line's names), the linear model.
``readings_per_s_line`` is the detector with that line in its bundle (every reading also forwarded
to the internal line topic, read back and balanced by the line monitors, all exactly-once);
``readings_per_s_no_line`` the same readings and model without a line; ``line_vs_no_line`` their
ratio (target >= 0.9). ``readings_per_s_line_no_monitor``: the line run again with monitors that
balance nothing (``NullMonitor``): every Kafka step of the line path (forwarding, the line topic, the
line table, state records) without the detection, so ``line_vs_no_line`` and
``line_no_monitor_vs_no_line`` split the line's cost between the transport and the monitors. Each
line run gets fresh line and state topics (a state topic kept from an earlier run would hand its
monitors the end of the data, and every reading would be refused).
``bench line`` measures the line work alone, without Kafka.
"""

from __future__ import annotations

import itertools
import logging
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from bench.record import BenchResult, rate
from detector.bundle import Bundle, load_bundle
from detector.incidents import Alert
from detector.line import LineCalibration, SegmentCalibration, SegmentView
from detector.line_table import MonitorFactory, line_monitor
from detector.testing import LINE_SENSORS
from detector.topology import Topology
from devtools import broker as local_broker
from devtools.stand_ins import build_linear_bundle
from stream.kafka_io import KafkaBroker
from stream.metrics import DetectorMetrics
from stream.service import DetectorService
from stream.settings import Settings
from stream.testing import Series, interleave, normal_series
from trainer.testing import build_keras_bundle

logger = logging.getLogger(__name__)

STATIONS = 200
MINUTES = 1000
QUICK_MINUTES = 200
PARTITIONS = 4
LINE_STATIONS = 10  # stations per line in the topology variant
REPETITIONS = 3
SENSORS = ("flow", "pressure", "pump_rpm", "tank_level", "power")
_QUIET = {"log_level": 3}


# -- shared with bench/latency.py and bench/memory.py --------------------------------------------
@contextmanager
def broker() -> Iterator[str]:
    with local_broker.provide() as provided:
        logger.info("%s", provided.describe())
        yield provided.bootstrap


@contextmanager
def topics(bootstrap: str, partitions: int, *names: str) -> Iterator[list[str]]:
    """Fresh topics (``partitions`` for the first, 1 for the rest), led, deleted afterwards."""
    from kafkakit.admin import delete_topics, ensure_topic

    client = {"bootstrap.servers": bootstrap, **_QUIET}
    made = [f"bench-{name}-{uuid.uuid4().hex[:8]}" for name in names]
    for i, topic in enumerate(made):
        ensure_topic(client, topic, partitions if i == 0 else 1, timeout_s=30.0)
    try:
        yield made
    finally:
        delete_topics(client, made, timeout_s=30.0)  # cleanup only: a failure is logged, not raised


def produce_all(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "enable.idempotence": True,
            **_QUIET,
        }
    )
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise RuntimeError("bench readings were not all delivered")


def detector_settings(
    bootstrap: str, readings: str, scores: str, alerts: str, dlq: str, **extra: Any
) -> Settings:
    fields: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {"readings": readings, "alerts": alerts, "dlq": dlq, "scores": scores},
        "group_id": f"bench-{uuid.uuid4().hex[:8]}",
        "instance_id": f"bench-{uuid.uuid4().hex[:8]}",
        "metrics_enabled": False,
        "watch_bundle": False,
        "idle_timeout_s": 1e6,
        "bundle_path": Path("unused"),
    }
    fields.update(extra)
    return Settings(**fields)


def make_series(stations: int, minutes: int) -> list[Series]:
    return [normal_series(f"ST-{i:05d}", minutes, seed=i) for i in range(stations)]


# -- the measurements -------------------------------------------------------------------------------
def bare_consume(bootstrap: str, topic: str, count: int) -> float:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **_QUIET,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    started: float | None = None
    try:
        while seen < count:
            batch = consumer.consume(5000, 0.5)
            if batch and started is None:
                started = time.perf_counter()
            seen += sum(1 for m in batch if m.error() is None)
        return rate(seen, time.perf_counter() - (started or time.perf_counter()))
    finally:
        consumer.close()


class NullMonitor:
    """A line monitor that keeps nothing and balances nothing (``readings_per_s_line_no_monitor``)."""

    def __init__(self, *_: Any) -> None:
        self.added = 0

    def add_row(
        self, station_id: str, seconds: float, fields: tuple[str, ...], values: tuple[float, ...]
    ) -> bool:
        self.added += 1
        return True

    def advance(self) -> list[Alert]:
        return []

    def open_incidents(self) -> int:
        return 0

    def open_taps(self) -> Iterator[tuple[str, str, str]]:
        return iter(())

    def views(self) -> Iterator[SegmentView]:
        return iter(())

    def snapshot(self) -> dict[str, Any]:
        return {"added": self.added}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        self.added = int(snapshot["added"])


def end_to_end(
    settings: Settings, bundle: Bundle, count: int, monitor_factory: MonitorFactory = line_monitor
) -> tuple[float, float, float]:
    """Readings/s, windows/s and the mean windows per scoring batch of one detector run (with a line
    in the bundle, until every reading and every forwarded line record is processed)."""
    registry = CollectorRegistry()
    metrics = DetectorMetrics(registry)
    kafka = KafkaBroker(settings)
    service = DetectorService(settings, kafka, bundle, metrics, monitor_factory=monitor_factory)
    assigned = threading.Event()
    original = service.assigned

    def on_assigned(partitions: Any) -> set[tuple[str, int]]:
        assigned.set()
        return original(partitions)

    service.assigned = on_assigned  # type: ignore[method-assign]
    kafka.start(service, int(service.rebuild_horizon().total_seconds() * 1000), service.line_topic)
    started: float | None = None
    try:
        done = 0
        deadline = time.monotonic() + 600
        while done < count and time.monotonic() < deadline:
            done += service.step()
            if started is None and assigned.is_set():
                started = time.perf_counter()
        while service.line_topic and time.monotonic() < deadline:  # until every reading is balanced
            balanced = registry.get_sample_value("centinela_line_readings_total") or 0.0
            if balanced >= count:
                break
            done += service.step()
        seconds = time.perf_counter() - (started or time.perf_counter())
    finally:
        kafka.close()
    windows = registry.get_sample_value("centinela_windows_scored_total") or 0.0
    batches = registry.get_sample_value("centinela_batch_windows_count") or 1.0
    return rate(count, seconds), rate(int(windows), seconds), windows / batches


def scoring_only(bundle: Bundle, windows: np.ndarray[Any, Any], count: int, batch: int) -> float:
    ids = ["ST-00000"] * len(windows)
    started = time.perf_counter()
    done = 0
    while done < count:
        take = min(batch, count - done)
        start = done % max(1, len(windows) - take)
        bundle.score(ids[:take], windows[start : start + take])
        done += take
    return rate(done, time.perf_counter() - started)


def sample_windows(bundle: Bundle, series: Sequence[Series]) -> np.ndarray[Any, Any]:
    from detector.windows import batch_windows

    parts = []
    for item in series[:20]:
        stamps = np.asarray([t.replace(tzinfo=None) for t in item.ts], dtype="datetime64[ns]")
        parts.append(batch_windows(stamps, item.values, bundle.window_spec).data)
    return np.concatenate(parts)


def bench_topology(stations: Sequence[str]) -> tuple[Topology, LineCalibration]:
    """``stations`` in lines of ``LINE_STATIONS``, each a chain of 50 km segments, tanks everywhere."""
    lines = []
    for first in range(0, len(stations), LINE_STATIONS):
        members = stations[first : first + LINE_STATIONS]
        lines.append(
            {
                "id": f"L{first // LINE_STATIONS:03d}",
                "station": [{"id": sid, "tank_area_m2": 250.0} for sid in members],
                "segment": [
                    {"upstream": up, "downstream": down, "length_km": 50.0, "inner_diameter_m": 0.3048}
                    for up, down in itertools.pairwise(members)
                ],
            }
        )
    topology = Topology.from_dict({"format": 1, "line": lines})
    calibration = LineCalibration({s.segment_id: SegmentCalibration(s.segment_id) for s in topology.segments})
    return topology, calibration


def line_readings(stations: Sequence[str], minutes: int) -> list[tuple[bytes, bytes]]:
    """One simulated line of ``LINE_STATIONS`` (normal life: pump stops, set-point and batch changes,
    noisy meters), its readings repeated under the names of every line of ``bench_topology``, in
    event-time order: a balance that behaves as on a real line, not independent noise."""
    import orjson

    from simulator import SimulationConfig, simulate

    result = simulate(SimulationConfig(stations=LINE_STATIONS, days=minutes / 1440, seed=1001))
    times = result.times.astype("datetime64[s]").astype(np.int64).tolist()
    rows: list[tuple[int, str, bytes]] = []
    for first in range(0, len(stations), LINE_STATIONS):
        names = stations[first : first + LINE_STATIONS]
        for s, name in enumerate(names):
            for t, stamp in enumerate(times):
                values = {field: float(result.readings[field][t, s]) for field in LINE_SENSORS}
                if not result.present[t, s] or not all(np.isfinite(list(values.values()))):
                    continue
                ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
                rows.append((stamp, name, orjson.dumps({"station_id": name, "ts": ts, **values})))
    rows.sort(key=lambda row: (row[0], row[1]))
    return [(name.encode(), body) for _stamp, name, body in rows]


def line_runs(
    bootstrap: str, folder: Path, stations: Sequence[str], minutes: int
) -> tuple[list[float], list[float], list[float]]:
    """Readings/s of the linear model without a line, with one, and with one balanced by
    ``NullMonitor``, ``REPETITIONS`` each."""
    line = bench_topology(stations)
    plain = load_bundle(build_linear_bundle(folder / "plain6", sensors=LINE_SENSORS))
    lined = load_bundle(build_linear_bundle(folder / "line6", sensors=LINE_SENSORS, line=line))
    wire = line_readings(stations, minutes)
    without: list[float] = []
    with_line: list[float] = []
    no_monitor: list[float] = []
    with topics(bootstrap, PARTITIONS, "readings6", "scores", "alerts", "dlq") as made:
        readings, scores, alerts, dlq = made
        produce_all(bootstrap, readings, wire)
        for repetition in range(REPETITIONS):
            logger.info("line repetition %d", repetition + 1)
            settings = detector_settings(bootstrap, readings, scores, alerts, dlq)
            without.append(end_to_end(settings, plain, len(wire))[0])
            for factory, figures in ((line_monitor, with_line), (NullMonitor, no_monitor)):
                # A fresh state topic too: the previous run's line states (their monitors past the
                # last minute) would be restored at assignment and every reading refused as late.
                with (
                    topics(bootstrap, PARTITIONS, "line") as (line_topic,),
                    topics(bootstrap, PARTITIONS, "state") as (state,),
                ):
                    settings = detector_settings(
                        bootstrap,
                        readings,
                        scores,
                        alerts,
                        dlq,
                        topics={
                            "readings": readings,
                            "alerts": alerts,
                            "dlq": dlq,
                            "scores": scores,
                            "state": state,
                            "line": line_topic,
                        },
                    )
                    figures.append(end_to_end(settings, lined, len(wire), factory)[0])  # type: ignore[arg-type]
    return without, with_line, no_monitor


def run(quick: bool) -> BenchResult:
    load_before = os.getloadavg()[0]
    minutes = QUICK_MINUTES if quick else MINUTES
    series = make_series(STATIONS, minutes)
    messages = interleave(series, SENSORS)
    count = len(messages)
    with tempfile.TemporaryDirectory() as folder:
        lstm = load_bundle(build_keras_bundle(Path(folder) / "lstm", units=(128, 64), seed=0))
        linear = load_bundle(build_linear_bundle(Path(folder) / "linear"))
        windows = sample_windows(lstm, series)
        results: dict[str, list[float]] = {
            k: [] for k in ("bare", "e2e_r", "e2e_w", "linear_r", "score", "ratio")
        }
        with (
            broker() as bootstrap,
            topics(bootstrap, PARTITIONS, "readings", "scores", "alerts", "dlq") as made,
        ):
            readings, scores, alerts, dlq = made
            produce_all(bootstrap, readings, messages)
            for repetition in range(REPETITIONS):
                logger.info("repetition %d", repetition + 1)
                results["bare"].append(bare_consume(bootstrap, readings, count))
                settings = detector_settings(bootstrap, readings, scores, alerts, dlq)
                per_s, windows_per_s, per_batch = end_to_end(settings, lstm, count)
                only = scoring_only(
                    lstm, windows, max(2000, int(windows_per_s * 5)), max(1, round(per_batch))
                )
                results["e2e_r"].append(per_s)
                results["e2e_w"].append(windows_per_s)
                results["score"].append(only)
                results["ratio"].append(windows_per_s / only)
                settings = detector_settings(bootstrap, readings, scores, alerts, dlq)
                results["linear_r"].append(end_to_end(settings, linear, count)[0])
            stations = [item.station_id for item in series]
            results["no_line_r"], results["line_r"], results["line_null_r"] = line_runs(
                bootstrap, Path(folder), stations, minutes
            )
    median = {key: statistics.median(values) for key, values in results.items()}
    return BenchResult(
        name="detector",
        figures={
            "readings_per_s": median["e2e_r"],
            "windows_per_s": median["e2e_w"],
            "readings_per_s_linear_model": median["linear_r"],
            "readings_per_s_line": median["line_r"],
            "readings_per_s_no_line": median["no_line_r"],
            "readings_per_s_line_no_monitor": median["line_null_r"],
        },
        baseline={
            "bare_consume_per_s": median["bare"],
            "scoring_only_windows_per_s": median["score"],
        },
        ratio={
            "windows_vs_scoring_only": median["ratio"],
            "readings_vs_bare_consume": median["e2e_r"] / median["bare"],
            "line_vs_no_line": median["line_r"] / median["no_line_r"],
            "line_no_monitor_vs_no_line": median["line_null_r"] / median["no_line_r"],
        },
        targets={
            "readings_per_s": ">= 40,000",
            "windows_vs_scoring_only": ">= 0.6",
            "line_vs_no_line": ">= 0.9",
        },
        notes=(
            f"{STATIONS} stations x {minutes} one-minute readings ({count} messages, "
            f"{PARTITIONS} partitions); exactly-once (transactions); LSTM 128-64 autoencoder "
            "(random weights) via ONNX Runtime, 2 threads; readings_per_s_linear_model: the same run "
            "with a linear stand-in model (scoring nearly free). readings_per_s_line / _no_line: the "
            f"linear model on simulated line readings (6 fields), with / without a topology of "
            f"lines of {LINE_STATIONS} stations (state topic on in the line run). "
            f"Medians of {REPETITIONS}. 1-minute load average before/after: {load_before:.2f}/"
            f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
            "(a shared machine: other work lowers these figures)."
        ),
    )
