"""The detector service against a real broker: parity with offline scoring, dead letters, silence,
hot reload and signals. The service runs in a thread with a stop event where it can; the signal
test runs ``centinela detect`` as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from detector.bundle import load_bundle
from detector.clock import ManualClock
from detector.onnx_runtime import onnx_scorers
from devtools.stand_ins import build_linear_bundle
from stream.runner import Running, run_detector
from stream.testing import Series, alert_ids, interleave, normal_series, offline_alerts
from tests.integration.detector_process import detector_settings
from tests.integration.detector_topics import Topics, committed_all, produce, read_topic
from tests.integration.kafka_helpers import TopicFactory, unique_name
from tests.integration.polling import wait_for

pytestmark = pytest.mark.integration

DATASET = Path("/work/shared/datasets/rebombeo_huachicoleo.csv")
ROOT = Path(__file__).resolve().parents[2]


# -- helpers -------------------------------------------------------------------------------------
def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def original_dataset(station: str) -> Series:
    frame = pd.read_csv(DATASET)
    stamps = pd.to_datetime(frame["timestamp"]).dt.tz_localize(UTC)
    values = frame[["flow", "pressure", "pump_rpm", "tank_level", "power"]].to_numpy(dtype=np.float64)
    return Series(station, [stamp.to_pydatetime() for stamp in stamps], values)


# -- tests ---------------------------------------------------------------------------------------
@pytest.mark.skipif(not DATASET.exists(), reason="the original data set is not on this machine")
def test_replaying_the_original_data_set_gives_the_offline_alerts(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=0.6)
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    # Two stations with the same history (one shifted by a sigma-wide offset, as a second station would be).
    first = original_dataset("EST-01")
    second = Series("EST-02", first.ts, first.values * 1.001)
    series = [first, second]
    reference = offline_alerts(bundle, series)
    assert len(reference) >= 3, "the reference should contain incidents"

    topics = Topics(fresh_topic)
    produce(kafka_bootstrap, topics.readings, list(interleave(series, bundle.sensors)))
    running = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path, max_batch=2000))
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every reading committed"
    )

    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(reference)
    by_id = {a.alert_id: a for a in reference}
    for alert in alerts:
        expected = by_id[alert["alert_id"]]
        assert alert["incident_id"] == expected.incident_id
        assert alert["score"] == pytest.approx(expected.score, rel=1e-5)
    keys = {m.key() for m in read_topic(kafka_bootstrap, topics.alerts, settle_s=0.2)}
    assert keys <= {b"EST-01", b"EST-02"}
    scores = read_topic(kafka_bootstrap, topics.scores, settle_s=0.2)
    assert len(scores) >= 2 * (len(first.ts) // 5) * 0.9
    metrics = scrape(running.metrics_port)
    assert sample(metrics, 'centinela_readings_total{outcome="accepted"}') == 2 * len(first.ts)
    assert sample(metrics, "centinela_decision_latency_seconds_count")
    wait_for(lambda: 'centinela_consumer_lag{partition="1"} 0.0' in scrape(running.metrics_port), 10, "lag 0")
    assert sample(scrape(running.metrics_port), "centinela_broker_up") == 1


_VALID = {"ts": "2025-01-01T00:00:00Z", "flow": 500.0, "pressure": 70.0, "pump_rpm": 1800.0}
_VALID |= {"tank_level": 15.0, "power": 400.0}
HOSTILE: list[tuple[str, bytes]] = [
    ("not_json", b"definitely not json"),
    ("wrong_type", orjson.dumps({"station_id": "EST-01", **_VALID, "flow": "high"})),
    ("not_finite", b'{"station_id": "EST-01", "ts": "2025-01-01T00:00:00Z", "flow": 1e999}'),
    ("too_large", b'{"pad": "' + b"A" * 100_000 + b'"}'),
    ("unknown_station", orjson.dumps({"station_id": "EST-77", **_VALID})),
    ("missing_field", b'{"station_id": "EST-01", "flow": 500.0}'),
    ("not_json", bytes(range(256)) * 2),
]


def test_hostile_messages_reach_the_dead_letter_topic_and_the_service_keeps_running(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0, stations=("EST-01",))
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [normal_series("EST-01", 300, seed=11, anomalies=[(120, 170, 0, 6.0)])]
    good = interleave(series, bundle.sensors)
    hostile: list[tuple[bytes | None, bytes | None]] = [
        (b"EST-77" if reason == "unknown_station" else b"EST-01", raw) for reason, raw in HOSTILE
    ]
    topics = Topics(fresh_topic, partitions=1)
    produce(kafka_bootstrap, topics.readings, [*good[:100], *hostile, *good[100:]])
    in_process(
        detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path, accept_unknown_stations=False)
    )
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every message committed"
    )

    dead = read_topic(kafka_bootstrap, topics.dlq)
    assert [dict(m.headers())["centinela.reason"].decode() for m in dead] == [r for r, _ in HOSTILE]
    for message, (_reason, raw) in zip(dead, HOSTILE, strict=True):
        headers = dict(message.headers())
        assert message.value() == raw
        assert headers["centinela.source.topic"] == topics.readings.encode()
        assert headers["centinela.source.partition"] == b"0"
        assert int(headers["centinela.source.offset"]) >= 100
        assert headers["centinela.detail"]
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(offline_alerts(bundle, series))


def test_a_silent_station_raises_data_gap(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0)
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    topics = Topics(fresh_topic, partitions=1)
    clock = ManualClock(datetime.now(UTC))
    produce(
        kafka_bootstrap,
        topics.readings,
        [
            *interleave(
                [normal_series("EST-01", 90, seed=12), normal_series("EST-02", 90, seed=13)], bundle.sensors
            )
        ],
    )
    in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path, idle_timeout_s=60), clock)
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every reading committed"
    )
    clock.advance(45 * 60)  # 45 minutes without a reading from anyone
    wait_for(lambda: bool(read_topic(kafka_bootstrap, topics.alerts, settle_s=0.3)), 30, "a data_gap alert")
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    gaps = {(a["station_id"], a["kind"], a["status"], a["reason"]) for a in alerts}
    assert ("EST-01", "data_gap", "open", "station_silent") in gaps
    assert ("EST-02", "data_gap", "open", "station_silent") in gaps


def test_a_new_bundle_in_the_watched_folder_is_swapped_in(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    # A deployment's layout: ``current`` is a symlink flipped atomically to the newest bundle.
    bundle_path = tmp_path / "current"
    bundle_path.symlink_to(build_linear_bundle(tmp_path / "v1", threshold=1.0, model_version="v1"))
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    topics = Topics(fresh_topic, partitions=1)
    messages = interleave([normal_series("EST-01", 200, seed=14)], bundle.sensors)
    produce(kafka_bootstrap, topics.readings, messages[:100])
    running = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path))
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "the first half")
    flipping = tmp_path / "current.new"
    flipping.symlink_to(build_linear_bundle(tmp_path / "v2", threshold=2.0, model_version="v2"))
    flipping.replace(bundle_path)
    wait_for(lambda: running.service.model_version == "v2", 20, "the new model")
    produce(kafka_bootstrap, topics.readings, messages[100:])
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "the second half")
    versions = [orjson.loads(m.value())["model_version"] for m in read_topic(kafka_bootstrap, topics.scores)]
    assert versions[0] == "v1"
    assert versions[-1] == "v2"
    assert sample(scrape(running.metrics_port), "centinela_model_reloads_total") == 1


def test_sighup_with_a_corrupt_bundle_keeps_the_old_model_and_sigterm_loses_nothing(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0, model_version="good-1")
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [normal_series("EST-01", 400, seed=15, anomalies=[(100, 150, 0, 6.0), (300, 340, 1, 8.0)])]
    messages = interleave(series, bundle.sensors)
    topics = Topics(fresh_topic, partitions=1)
    produce(kafka_bootstrap, topics.readings, messages[:200])

    from socket import socket

    with socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CENTINELA_")},
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CENTINELA_GROUP_ID": fresh_group,
        "CENTINELA_INSTANCE_ID": unique_name("sig"),
        "CENTINELA_BUNDLE_PATH": str(bundle_path),
        "CENTINELA_METRICS_HOST": "127.0.0.1",
        "CENTINELA_METRICS_PORT": str(port),
        "CENTINELA_WATCH_BUNDLE": "false",
        "CENTINELA_TRANSACTION_TIMEOUT_S": "10",
    }
    log_path = tmp_path / "detector.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "centinela", "detect"], env=env, cwd=ROOT, stdout=log_file, stderr=log_file
        )
        try:
            wait_for(
                lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 90, "the first half"
            )
            (bundle_path / "model.onnx").write_bytes(b"\x00corrupt\x00")
            process.send_signal(signal.SIGHUP)
            wait_for(
                lambda: sample(scrape(port), "centinela_model_reload_failures_total") == 1,
                20,
                "the refused reload",
            )
            produce(kafka_bootstrap, topics.readings, messages[200:])
            process.send_signal(signal.SIGTERM)  # while the second half is being read
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    log_text = log_path.read_text()
    assert "model reload refused" in log_text
    assert "checksum mismatch" in log_text
    assert "SIGTERM" in log_text
    # A successor (with the good bundle back) finishes the topic: together, exactly the reference alerts.
    good_path = build_linear_bundle(tmp_path / "again", threshold=1.0, model_version="good-1")
    in_process(detector_settings(kafka_bootstrap, topics, fresh_group, good_path))
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "the rest")
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(offline_alerts(bundle, series))
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    assert {a["model_version"] for a in alerts} == {"good-1"}


def test_a_successor_rebuilds_from_before_the_committed_offsets_and_doubles_nothing(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0)
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [
        normal_series("EST-01", 600, seed=21, anomalies=[(150, 200, 0, 6.0), (380, 420, 2, 9.0)]),
        normal_series("EST-02", 600, seed=22, anomalies=[(390, 460, 4, 7.0)]),
    ]
    topics = Topics(fresh_topic, partitions=2)
    produce(kafka_bootstrap, topics.readings, interleave(series, bundle.sensors))
    stop = threading.Event()

    def halfway(running: Running) -> None:
        # Stop the first instance once it has committed some, not all, of the readings.
        def watch() -> None:
            registry = running.service.metrics.registry
            while (registry.get_sample_value("centinela_readings_total", {"outcome": "accepted"}) or 0) < 300:
                time.sleep(0.001)
            stop.set()

        threading.Thread(target=watch, daemon=True).start()

    first = detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path, max_batch=50)
    thread = threading.Thread(
        target=run_detector,
        args=(first,),
        kwargs={"stop": stop, "registry": CollectorRegistry(), "on_start": halfway},
        daemon=True,
    )
    thread.start()
    wait_for(stop.is_set, 60, "the first instance to get a part of the way")
    thread.join(30)
    assert not committed_all(kafka_bootstrap, fresh_group, topics.readings)

    second = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path))
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "the rest")
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(offline_alerts(bundle, series))
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    rebuilt = second.service.metrics.registry.get_sample_value("centinela_rebuilt_readings_total")
    assert rebuilt is not None and rebuilt >= 300  # the commit metadata said where to seek back from


def test_a_simulator_file_with_thefts_gives_the_offline_alerts(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    from detector.bundle import write_bundle
    from detector.scaling import Scaler, StationScalers
    from detector.windows import WindowSpec
    from devtools.stand_ins import linear_onnx_model
    from simulator import SimulationConfig, simulate
    from simulator.event import Event

    config = SimulationConfig(
        stations=3,
        days=1,
        seed=5,
        scripted=(Event.theft(0, 400, 560, 0.2), Event.theft(1, 900, 1000, 0.3)),
    )
    result = simulate(config)
    sensors = list(result.readings)
    series = []
    every = result.frame
    for station_id in result.station_ids:
        frame = every[every["station_id"] == station_id]
        stamps = [stamp.to_pydatetime() for stamp in pd.to_datetime(frame["timestamp"], utc=True)]
        series.append(Series(station_id, stamps, frame[sensors].to_numpy(dtype=np.float64)))
    scalers = StationScalers(
        per_station={
            s.station_id: Scaler.fit(s.values[:300][np.isfinite(s.values[:300]).all(axis=1)]) for s in series
        },
        fallback=Scaler(np.zeros(len(sensors)), np.ones(len(sensors))),
    )

    def bundle_with(threshold: float, folder: str) -> Path:
        spec = WindowSpec()
        return write_bundle(
            tmp_path / folder,
            onnx_model=linear_onnx_model(spec.samples_per_window, len(sensors)),
            keras_model_file=None,
            model_version="sim-linear",
            sensors=sensors,
            window=spec,
            scalers=scalers,
            aggregation="mean",
            threshold=threshold,
        )

    # Threshold: well above the quiet windows' scores, so only the thefts open incidents.
    probe = load_bundle(bundle_with(1.0, "probe"), reconstructor_factory=onnx_scorers(threads=1))
    from detector.windows import batch_windows

    quiet_scores = []
    for s in series:
        stamps = np.asarray([t.replace(tzinfo=None) for t in s.ts[:380]], dtype="datetime64[ns]")
        windows = batch_windows(stamps, s.values[:380], probe.window_spec)
        quiet_scores += probe.score([s.station_id] * len(windows.data), windows.data).scores.tolist()
    bundle_path = bundle_with(3.0 * max(quiet_scores), "bundle")
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    reference = offline_alerts(bundle, series)
    assert any(a.kind == "incident" and a.status == "open" for a in reference)

    topics = Topics(fresh_topic, partitions=3)
    produce(kafka_bootstrap, topics.readings, list(interleave(series, sensors)))
    in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path))
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every reading committed"
    )
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(reference)


def test_two_instances_share_the_partitions_and_one_leaving_loses_and_doubles_nothing(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0)
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [
        normal_series(f"EST-{i:02d}", 500, seed=40 + i, anomalies=[(100 + 50 * i, 160 + 50 * i, i % 5, 7.0)])
        for i in range(6)
    ]
    messages = interleave(series, bundle.sensors)
    half = len(messages) // 2
    topics = Topics(fresh_topic, partitions=4)
    produce(kafka_bootstrap, topics.readings, messages[:half])
    # A alone reads the first half; B joins (a rebalance: each rebuilds what it was given); the second
    # half arrives; A leaves mid-stream and B takes everything over.
    stop_a = threading.Event()
    registry_a = CollectorRegistry()
    first = threading.Thread(
        target=run_detector,
        args=(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path, max_batch=40),),
        kwargs={"stop": stop_a, "registry": registry_a},
        daemon=True,
    )
    first.start()
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "A to read the first half"
    )
    second = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path, max_batch=40))
    wait_for(lambda: bool(second.service._held), 60, "B to get partitions")
    produce(kafka_bootstrap, topics.readings, messages[half:])
    time.sleep(0.3)
    stop_a.set()
    first.join(30)
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 90, "B to finish")
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(offline_alerts(bundle, series))
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    assert second.service.metrics.registry.get_sample_value("centinela_rebuilt_readings_total")


def test_the_state_topic_carries_an_incident_across_a_restart(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0)
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [
        normal_series("EST-01", 600, seed=9, anomalies=[(100, 420, 0, 6.0)]),
        normal_series("EST-02", 600),
    ]
    messages = interleave(series, bundle.sensors)
    # Produce times follow event time (30 s apart: two stations a minute), ending now, so the
    # successor's seek-back by the rebuild horizon lands inside the incident.
    now_ms = int(time.time() * 1000)
    stamps = [now_ms - (len(messages) - i) * 30_000 for i in range(len(messages))]
    topics = Topics(fresh_topic, partitions=2)
    state = fresh_topic(2, prefix="state", config={"cleanup.policy": "compact"})
    produce(kafka_bootstrap, topics.readings, messages[:600], stamps[:600])
    settings = detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path)
    with_state = settings.model_copy(update={"topics": settings.topics.model_copy(update={"state": state})})
    stop = threading.Event()
    runner = threading.Thread(
        target=run_detector,
        args=(with_state,),
        kwargs={"stop": stop, "registry": CollectorRegistry()},
        daemon=True,
    )
    runner.start()
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "the first 300 minutes"
    )
    stop.set()
    runner.join(30)
    produce(kafka_bootstrap, topics.readings, messages[600:], stamps[600:])
    successor = in_process(with_state)
    readings_of_est01 = [
        m for m in read_topic(kafka_bootstrap, topics.readings, settle_s=0.3) if m.key() == b"EST-01"
    ]
    series_partition = readings_of_est01[0].partition()
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "the rest")
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    reference = offline_alerts(bundle, series)
    assert [(a["alert_id"], a["incident_id"]) for a in alerts] == [
        (a.alert_id, a.incident_id) for a in reference
    ]
    rebuilt = successor.service.metrics.registry.get_sample_value("centinela_rebuilt_readings_total")
    assert rebuilt is not None and 0 < rebuilt < 600  # re-read the horizon, not everything
    records = read_topic(kafka_bootstrap, state, settle_s=0.3)
    assert {m.key() for m in records} == {b"EST-01"}  # a station that stays normal writes no state
    assert all(m.partition() == series_partition for m in records)


def test_at_least_once_mode_publishes_the_same_alerts(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0)
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [normal_series("EST-01", 300, seed=51, anomalies=[(100, 150, 0, 6.0)])]
    topics = Topics(fresh_topic, partitions=1)
    produce(kafka_bootstrap, topics.readings, interleave(series, bundle.sensors))
    in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path, exactly_once=False))
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every reading committed"
    )
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(offline_alerts(bundle, series))
