"""Hostile input against the real broker (issue 22): a message the dead-letter topic cannot take
as it is, readings far apart in event time, and restarts after refused messages."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.bundle import load_bundle
from detector.testing import build_linear_bundle
from stream.testing import alert_ids, interleave, normal_series, offline_alerts
from tests.integration.detector_process import detector_settings
from tests.integration.detector_topics import Topics, committed_all, produce, read_topic
from tests.integration.kafka_helpers import TopicFactory
from tests.integration.polling import wait_for

pytestmark = pytest.mark.integration

BIG = 2_000_000  # the readings topic takes messages this large; the producer below too


def produce_large(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": BIG, "linger.ms": 5})
    for key, value in messages:
        producer.produce(topic, value=value, key=key)
    assert producer.flush(30) == 0


def test_a_reading_above_the_dead_letter_limit_is_stored_truncated_and_the_rest_is_processed(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0, stations=("EST-01",))
    bundle = load_bundle(bundle_path, threads=1)
    series = [normal_series("EST-01", 300, seed=21, anomalies=[(150, 200, 0, 6.0)])]
    good = interleave(series, bundle.sensors)
    # 1.04 MB, as in the issue: above the producer's default message.max.bytes (1,000,000).
    poison = b'{"station_id": "EST-01", "pad": "' + b"A" * 1_040_000 + b'"}'
    topics = Topics(fresh_topic, partitions=1)
    topics.readings = fresh_topic(1, prefix="readings-big", config={"max.message.bytes": str(BIG)})
    produce(kafka_bootstrap, topics.readings, good[:100])
    produce_large(kafka_bootstrap, topics.readings, [(b"EST-01", poison)])
    produce(kafka_bootstrap, topics.readings, good[100:])
    running = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path))
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every message committed"
    )

    (dead,) = read_topic(kafka_bootstrap, topics.dlq)
    headers = dict(dead.headers())
    assert headers["centinela.reason"] == b"too_large"
    assert headers["centinela.truncated"] == b"true"
    assert int(headers["centinela.original.size"]) == len(poison)
    assert headers["centinela.original.sha256"] == hashlib.sha256(poison).hexdigest().encode()
    assert 0 < len(dead.value()) < 1_000_000
    assert poison.startswith(dead.value())
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(offline_alerts(bundle, series))
    assert running.service.stations.get("EST-01") is not None


def test_a_year_old_first_reading_then_current_ones_raise_a_handful_of_alerts(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0, stations=("EST-01",))
    bundle = load_bundle(bundle_path, threads=1)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    old = normal_series("EST-01", 1, seed=22, start=now - timedelta(days=365))
    current = normal_series("EST-01", 120, seed=23, start=now - timedelta(minutes=125))
    topics = Topics(fresh_topic, partitions=1)
    produce(
        kafka_bootstrap, topics.readings, [*old.messages(bundle.sensors), *current.messages(bundle.sensors)]
    )
    running = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path))
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every reading committed"
    )

    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    # Today's code: 35,034 (a data_gap update every 15 min of the year). Now: the gap opens and closes.
    assert [(a["kind"], a["status"]) for a in alerts] == [("data_gap", "open"), ("data_gap", "close")]
    skipped = running.service.metrics.gap_windows_skipped._value.get()
    assert skipped > 100_000  # a year of 5-minute windows, counted, never cut
