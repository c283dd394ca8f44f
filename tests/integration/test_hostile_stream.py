"""The hostile stream of issue 22, end to end: valid readings of two stations interleaved (seeded)
with messages malformed in 22 ways (16 reasons), one of them above the dead-letter topic's size
limit. Every bad one reaches the dead-letter topic with its reason, none valid does, the detector
never stops, and the alerts are those of a clean run. The counts are printed (``pytest -s``)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.bundle import load_bundle
from detector.onnx_runtime import onnx_scorers
from devtools.stand_ins import build_linear_bundle
from stream.testing import alert_ids, interleave, normal_series, offline_alerts
from tests.integration.detector_process import detector_settings
from tests.integration.detector_topics import Topics, committed_all, read_topic
from tests.integration.kafka_helpers import TopicFactory
from tests.integration.polling import wait_for

pytestmark = pytest.mark.integration

BIG = 2_000_000
VALID = {"station_id": "EST-01", "ts": "2025-01-01T03:00:00Z", "flow": 500.0, "pressure": 70.0}
VALID |= {"pump_rpm": 1800.0, "tank_level": 15.0, "power": 400.0}


def body(**changes: Any) -> bytes:
    fields = {**VALID, **changes}
    return orjson.dumps({k: v for k, v in fields.items() if v is not ...})


def hostile_kinds() -> list[tuple[str, bytes | None, bytes | None]]:
    """(expected reason, key, value): 20 ways for a message to be wrong."""
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        ("not_json", b"EST-01", b"definitely not json"),
        ("not_json", b"EST-01", bytes(range(256))),
        ("not_object", b"EST-01", b"[1, 2, 3]"),
        ("missing_field", b"EST-01", body(station_id=...)),
        ("missing_field", b"EST-01", body(ts=...)),
        ("missing_field", b"EST-01", body(power=...)),
        ("wrong_type", b"EST-01", body(station_id=7)),
        ("wrong_type", b"EST-01", body(flow="high")),
        ("wrong_type", b"EST-01", body(flow=True)),
        ("not_finite", b"EST-01", body().replace(b"500.0", b"1e999")),
        ("out_of_range", b"EST-01", body(flow=-5.0)),
        ("unknown_sensor", b"EST-01", body(label=1)),
        ("bad_timestamp", b"EST-01", body(ts="yesterday")),
        ("naive_timestamp", b"EST-01", body(ts="2025-01-01T03:00:00")),
        ("bad_station_id", b"EST-01", body(station_id="EST-01\n")),
        ("bad_schema", b"EST-01", body(schema=2)),
        ("too_large", b"EST-01", body(pad="A" * 100_000)),
        ("empty", b"EST-01", None),
        ("key_mismatch", b"EST-02", body()),
        ("unknown_station", b"EST-77", body(station_id="EST-77")),
        ("future_timestamp", b"EST-01", body(ts=future)),
        ("too_large", b"EST-01", body(pad="A" * 1_040_000)),  # above the producer's 1,000,000
    ]


def test_a_hostile_stream_is_dead_lettered_whole_and_the_alerts_equal_a_clean_run(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    from confluent_kafka import Producer

    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0, stations=("EST-01", "EST-02"))
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [
        normal_series("EST-01", 600, seed=41, anomalies=[(200, 260, 0, 6.0)]),
        normal_series("EST-02", 600, seed=42, anomalies=[(400, 450, 2, 8.0)]),
    ]
    valid = interleave(series, bundle.sensors)
    kinds = hostile_kinds()
    rng = random.Random(22)
    hostile = [rng.choice(kinds) for _ in range(300)] + kinds  # every kind at least once
    stream: list[tuple[str | None, bytes | None, bytes | None]] = [(None, k, v) for k, v in valid]
    for reason, key, value in hostile:
        stream.insert(rng.randrange(len(stream) + 1), (reason, key, value))

    topics = Topics(fresh_topic, partitions=1)
    topics.readings = fresh_topic(1, prefix="readings-big", config={"max.message.bytes": str(BIG)})
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": BIG, "linger.ms": 5})
    for _reason, key, value in stream:
        while True:
            try:
                producer.produce(topics.readings, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    running = in_process(
        detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path, accept_unknown_stations=False)
    )
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 120, "every message")

    dead = read_topic(kafka_bootstrap, topics.dlq)
    reasons = [dict(m.headers())["centinela.reason"].decode() for m in dead]
    assert reasons == [reason for reason, _key, _value in stream if reason is not None]
    truncated = [m for m in dead if dict(m.headers()).get("centinela.truncated") == b"true"]
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    clean = offline_alerts(bundle, series)
    registry = running.service.metrics.registry
    accepted = registry.get_sample_value("centinela_readings_total", {"outcome": "accepted"})
    print(
        f"\nhostile stream: sent {len(stream)}, valid {len(valid)}, malformed {len(hostile)} "
        f"({len({r for r, _k, _v in kinds})} reasons, {len(kinds)} ways), dead-lettered {len(dead)} "
        f"({len(truncated)} truncated), accepted {accepted:.0f}, crashes 0, alerts {len(alerts)} "
        f"(clean run {len(clean)})"
    )
    assert accepted == len(valid)
    assert truncated
    assert alert_ids(alerts) == alert_ids(clean)
