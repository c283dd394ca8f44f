"""Exactly the same committed alerts after SIGKILLs and with two detectors sharing a group."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from detector.bundle import load_bundle
from detector.testing import build_linear_bundle
from stream.testing import interleave, normal_series
from tests.integration.detector_process import committed_alerts, comparable, settled, start_detector
from tests.integration.kafka_helpers import TopicFactory, unique_name
from tests.integration.test_detector_service import Topics, committed_all, produce, wait_for

pytestmark = pytest.mark.integration


def series_with_incidents() -> list[Any]:
    return [
        normal_series("EST-01", 900, seed=31, anomalies=[(150, 200, 0, 6.0), (500, 560, 2, 9.0)]),
        normal_series("EST-02", 900, seed=32, anomalies=[(390, 460, 4, 7.0), (700, 740, 1, 8.0)]),
        normal_series("EST-03", 900, seed=33, anomalies=[(250, 300, 3, 7.0)]),
    ]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def reference_alerts(
    bootstrap: str, fresh_topic: TopicFactory, bundle_path: Path, messages: list[Any], tmp_path: Path
) -> dict[str, dict[str, Any]]:
    """One uninterrupted detector over the same readings."""
    topics = Topics(fresh_topic, partitions=3)
    group = unique_name("reference")
    produce(bootstrap, topics.readings, messages)
    process = start_detector(
        bootstrap, topics, group, bundle_path, tmp_path / "reference.log", max_batch="50"
    )
    try:
        wait_for(lambda: committed_all(bootstrap, group, topics.readings), 90, "the reference run")
    finally:
        stop(process)
    alerts = committed_alerts(bootstrap, topics.alerts)
    assert len(alerts) >= 6, "the reference should hold several incidents"
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    return {a["alert_id"]: comparable(a) for a in alerts}


def assert_same(alerts: list[dict[str, Any]], reference: dict[str, dict[str, Any]]) -> None:
    ids = [a["alert_id"] for a in alerts]
    assert len(set(ids)) == len(ids), "duplicate alerts"
    assert set(ids) == set(reference), "missing or extra alerts"
    for alert in alerts:
        assert comparable(alert) == reference[alert["alert_id"]]


def test_three_sigkills_leave_exactly_the_reference_alerts(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0)
    sensors = load_bundle(bundle_path, threads=1).sensors
    messages: list[Any] = interleave(series_with_incidents(), sensors)
    reference = reference_alerts(kafka_bootstrap, fresh_topic, bundle_path, messages, tmp_path)

    topics = Topics(fresh_topic, partitions=3)
    rng = random.Random(7)
    cuts = sorted(rng.sample(range(200, len(messages) - 200), 3))
    log = tmp_path / "killed.log"
    start = 0
    recoveries: list[float] = []
    for cut in [*cuts, len(messages)]:
        produce(kafka_bootstrap, topics.readings, messages[start:cut])  # paced: kills land mid-stream
        started = time.monotonic()
        process = start_detector(kafka_bootstrap, topics, fresh_group, bundle_path, log, max_batch="20")
        if cut != len(messages):
            time.sleep(rng.uniform(2.0, 5.0))
            process.kill()  # SIGKILL: no chance to finish its transaction
            process.wait(10)
        else:
            wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 90, "the rest")
            recoveries.append(time.monotonic() - started)
            stop(process)
        start = cut
    assert_same(committed_alerts(kafka_bootstrap, topics.alerts), reference)


def test_two_detectors_one_killed_leave_exactly_the_reference_alerts(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0)
    sensors = load_bundle(bundle_path, threads=1).sensors
    messages: list[Any] = interleave(series_with_incidents(), sensors)
    reference = reference_alerts(kafka_bootstrap, fresh_topic, bundle_path, messages, tmp_path)

    topics = Topics(fresh_topic, partitions=3)
    half = len(messages) // 2
    produce(kafka_bootstrap, topics.readings, messages[:half])
    log = tmp_path / "pair.log"
    first = start_detector(kafka_bootstrap, topics, fresh_group, bundle_path, log, max_batch="20")
    second = start_detector(kafka_bootstrap, topics, fresh_group, bundle_path, log, max_batch="20")
    try:
        time.sleep(4.0)
        produce(kafka_bootstrap, topics.readings, messages[half:])
        first.kill()  # mid-replay: its partitions move to the survivor, which rebuilds
        first.wait(10)
        wait_for(lambda: settled(kafka_bootstrap, fresh_group, topics.readings), 120, "the survivor")
    finally:
        first.kill()
        stop(second)
    assert_same(committed_alerts(kafka_bootstrap, topics.alerts), reference)
