"""Hostile input against the real broker (issue 22): a message the dead-letter topic cannot take
as it is, readings far apart in event time, and restarts after refused messages."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detector.bundle import MANIFEST, load_bundle, sign_bundle
from detector.errors import BundleError
from detector.onnx_runtime import onnx_scorers
from devtools.stand_ins import build_linear_bundle
from stream.runner import Running, run_detector
from stream.testing import alert_ids, interleave, normal_series, offline_alerts
from tests.integration.detector_process import detector_settings, start_detector, stop, wait_until_read
from tests.integration.detector_topics import Topics, committed_all, produce, read_topic
from tests.integration.kafka_helpers import TopicFactory
from tests.integration.local_ports import free_port
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
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [normal_series("EST-01", 300, seed=21, anomalies=[(150, 200, 0, 6.0)])]
    good = interleave(series, bundle.sensors)
    # 1.04 MB, as in the issue: above the producer's default message.max.bytes (1,000,000).
    poison = b'{"station_id": "EST-01", "pad": "' + b"A" * 1_040_000 + b'"}'
    topics = Topics(fresh_topic, partitions=1)
    topics.readings = fresh_topic(1, prefix="readings-big", config={"max.message.bytes": str(BIG)})
    produce(kafka_bootstrap, topics.readings, good[:100])
    produce_large(kafka_bootstrap, topics.readings, [(b"EST-01", poison)])
    newline = orjson.loads(good[100][1]) | {"station_id": "EST-01\n"}  # passed the pattern before
    produce(kafka_bootstrap, topics.readings, [(b"EST-01\n", orjson.dumps(newline))])
    produce(kafka_bootstrap, topics.readings, good[100:])
    running = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path))
    wait_for(
        lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every message committed"
    )

    dead, spoiled_id = read_topic(kafka_bootstrap, topics.dlq)
    assert dict(spoiled_id.headers())["centinela.reason"] == b"bad_station_id"
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
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
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


def run_until_committed(settings: Any, bootstrap: str, group: str, topic: str) -> dict[str, float]:
    """Run a detector until ``topic`` is committed to its end, stop it (as SIGTERM would); the
    counts it saw and the stations it held."""
    stop = threading.Event()
    started: list[Running] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_detector(settings, stop=stop, registry=CollectorRegistry(), on_start=started.append)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target, name="detector", daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: committed_all(bootstrap, group, topic) or bool(errors), 60, "every message committed"
        )
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    service = started[0].service
    registry = service.metrics.registry
    counts = {
        outcome: registry.get_sample_value("centinela_readings_total", {"outcome": outcome}) or 0.0
        for outcome in ("accepted", "late", "duplicate")
    }
    counts["rebuilt"] = registry.get_sample_value("centinela_rebuilt_readings_total") or 0.0
    counts["stations"] = float(len(service.stations))
    counts["unknown_held"] = float(service.stations.get("EST-77") is not None)
    return counts


def test_a_restart_re_ingests_nothing_that_was_refused(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0, stations=("EST-01",))
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = normal_series("EST-01", 400, seed=24, anomalies=[(150, 200, 0, 6.0), (320, 360, 1, 8.0)])
    good = series.messages(bundle.sensors)
    unknown = normal_series("EST-77", 10, seed=25, start=series.ts[80]).messages(bundle.sensors)
    # Readings of EST-01 under another key, stamped where the real ones of minutes 210-219 will be:
    # re-ingested, they would make those late or duplicates.
    forged = [(b"EST-02", value) for _key, value in good[210:220]]
    future = normal_series("EST-01", 1, seed=26, start=datetime.now(UTC) + timedelta(days=2))
    topics = Topics(fresh_topic, partitions=1)
    # The same instance id each time: a restarted static member takes its partition back at once.
    settings = detector_settings(
        kafka_bootstrap,
        topics,
        fresh_group,
        bundle_path,
        accept_unknown_stations=False,
        instance_id="poison-1",
    )

    def run() -> dict[str, float]:
        return run_until_committed(settings, kafka_bootstrap, fresh_group, topics.readings)

    produce(kafka_bootstrap, topics.readings, [*good[:100], *unknown])
    first = run()
    assert first["unknown_held"] == 0 and first["accepted"] == 100
    produce(kafka_bootstrap, topics.readings, [*good[100:200], *forged])
    after_unknown = run()  # rebuilds from the unknown station's readings
    assert after_unknown["rebuilt"] >= 100
    assert after_unknown["unknown_held"] == 0 and after_unknown["stations"] == 1
    produce(kafka_bootstrap, topics.readings, [*good[200:300], *future.messages(bundle.sensors)])
    after_forged = run()  # rebuilds from the forged readings
    assert (after_forged["accepted"], after_forged["late"], after_forged["duplicate"]) == (100, 0, 0)
    produce(kafka_bootstrap, topics.readings, good[300:])
    after_future = run()  # rebuilds from the future one
    assert (after_future["accepted"], after_future["late"], after_future["duplicate"]) == (100, 0, 0)
    assert after_future["unknown_held"] == 0

    dead = read_topic(kafka_bootstrap, topics.dlq)
    reasons = [dict(m.headers())["centinela.reason"].decode() for m in dead]
    assert reasons == ["unknown_station"] * 10 + ["key_mismatch"] * 10 + ["future_timestamp"]
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(offline_alerts(bundle, [series]))
    assert len({a["alert_id"] for a in alerts}) == len(alerts)


def test_with_a_key_detect_refuses_an_unsigned_bundle_at_start_and_an_edited_one_at_reload(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    key = "a-deployment-secret-of-32-bytes!"
    unsigned = build_linear_bundle(tmp_path / "unsigned", threshold=1.0)
    topics = Topics(fresh_topic, partitions=1)
    with pytest.raises(BundleError, match="unsigned"):
        run_detector(
            detector_settings(kafka_bootstrap, topics, fresh_group, unsigned, bundle_key=key),
            stop=threading.Event(),
            registry=CollectorRegistry(),
        )
    env = {**os.environ, "CENTINELA_BUNDLE_KEY": key, "CENTINELA_BUNDLE_PATH": str(unsigned)}
    check = subprocess.run(
        [sys.executable, "-m", "centinela", "detect", "--check"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode != 0 and "unsigned" in check.stderr and key not in check.stdout + check.stderr

    bundle_path = sign_bundle(
        build_linear_bundle(tmp_path / "signed", threshold=1.0, model_version="v1"), key.encode()
    )
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [normal_series("EST-01", 300, seed=27, anomalies=[(150, 200, 0, 6.0)])]
    messages = interleave(series, bundle.sensors)
    produce(kafka_bootstrap, topics.readings, messages[:150])
    running = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path, bundle_key=key))
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "the first half")
    manifest = orjson.loads((bundle_path / MANIFEST).read_bytes())
    manifest["threshold"] *= 1000  # the edit; the signature no longer matches
    (bundle_path / MANIFEST).write_bytes(orjson.dumps(manifest))
    registry = running.service.metrics.registry
    wait_for(
        lambda: registry.get_sample_value("centinela_model_reload_failures_total") == 1, 20, "the refusal"
    )
    produce(kafka_bootstrap, topics.readings, messages[150:])
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "the second half")
    assert running.service.bundle.threshold == 1.0
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(offline_alerts(bundle, series))


def group_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int] | None:
    """The group's committed offset per partition, or None while they cannot be read (unstable)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=2)
        return {tp.partition: tp.offset for tp in committed}
    except KafkaException:
        return None
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends"})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        }
    finally:
        consumer.close()


@pytest.mark.slow
@pytest.mark.faults
def test_a_survivor_outlives_a_member_killed_inside_a_transaction(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path
) -> None:
    """Two detectors share the group; one is SIGKILLed while the feed runs (so, most likely, inside
    a transaction: its partitions' committed offsets stay unstable until the broker aborts it). The
    survivor must take its partitions over and go on; the takeover time is printed."""
    from confluent_kafka import Producer

    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0)
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [normal_series(f"EST-0{i}", 3000, seed=30 + i) for i in range(1, 5)]
    messages = interleave(series, bundle.sensors)
    topics = Topics(fresh_topic, partitions=2)
    feeding = threading.Event()

    def feed() -> None:  # ~100 readings/s, as a live line would send them, until told to stop
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
        for index, (key, value) in enumerate(messages):
            if not feeding.is_set():
                break
            producer.produce(topics.readings, value=value, key=key)
            if index % 4 == 3:
                producer.poll(0)
                time.sleep(0.04)
        producer.flush(30)

    # Production settings where it matters: a 30 s transaction timeout; a 6 s session (the broker's
    # minimum) so the survivor is handed the partitions while the dead member's transaction is open.
    options = {
        "transaction_timeout_s": "30",
        "kafka__extra": '{"session.timeout.ms": "6000"}',
        "max_batch": "20",
    }
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    port_a = free_port()
    victim = start_detector(
        kafka_bootstrap, topics, fresh_group, bundle_path, log_a, metrics_port=str(port_a), **options
    )
    survivor = start_detector(kafka_bootstrap, topics, fresh_group, bundle_path, log_b, **options)
    feeding.set()
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        wait_until_read(victim, port_a, 300, timeout_s=90)
        victim.kill()  # SIGKILL: no chance to finish its transaction
        killed_at = time.monotonic()
        victim.wait(10)
        due = end_offsets(kafka_bootstrap, topics.readings)

        def taken_over() -> bool:
            assert survivor.poll() is None, (
                f"the survivor exited ({survivor.returncode}): {log_b.read_text()[-2000:]}"
            )
            offsets = group_offsets(kafka_bootstrap, fresh_group, topics.readings)
            return offsets is not None and all(offsets.get(p, -1) >= end for p, end in due.items())

        wait_for(taken_over, 150, "the survivor to commit what was read before the kill")
        takeover_s = time.monotonic() - killed_at
        print(f"\nfailover: takeover {takeover_s:.1f} s after the SIGKILL (transaction_timeout_s=30)")
        feeding.clear()
        feeder.join(30)
        wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "the rest")
        assert survivor.poll() is None
    finally:
        feeding.clear()
        victim.kill()
        stop(survivor)
    assert survivor.returncode == 0
    log_text = log_b.read_text()
    assert "Failed to get committed offsets" not in log_text or "retrying" in log_text


@pytest.mark.slow
def test_a_new_owner_waits_out_a_dead_members_open_transaction_instead_of_exiting(
    kafka_bootstrap: str, fresh_topic: TopicFactory, fresh_group: str, tmp_path: Path, in_process: Any
) -> None:
    """The deterministic form of a member SIGKILLed inside a transaction: a transactional producer
    adds an offset commit of the group to its transaction and never ends it. The partition's
    committed offset stays unstable until the broker aborts that transaction (45 s here, beyond the
    30 s the new owner's ``committed`` call used to wait before the detector exited 2)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0, stations=("EST-01",))
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [normal_series("EST-01", 200, seed=31, anomalies=[(100, 150, 0, 6.0)])]
    topics = Topics(fresh_topic, partitions=1)
    produce(kafka_bootstrap, topics.readings, interleave(series, bundle.sensors))
    dead = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "transactional.id": f"{fresh_group}.dead",
            "transaction.timeout.ms": 45000,
        }
    )
    dead.init_transactions(30)
    dead.begin_transaction()
    member = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": fresh_group})
    dead.send_offsets_to_transaction(
        [TopicPartition(topics.readings, 0, 50, "0")], member.consumer_group_metadata(), 30
    )
    member.close()
    started = time.monotonic()
    running = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path))
    registry = running.service.metrics.registry
    wait_for(
        lambda: (registry.get_sample_value("centinela_readings_total", {"outcome": "accepted"}) or 0) > 0,
        120,
        "the new owner to read past the dead member's transaction",
    )
    takeover_s = time.monotonic() - started
    print(f"\ntakeover past an open transaction (45 s timeout): {takeover_s:.1f} s")
    assert takeover_s > 30  # it did wait on the unstable offset, past the old single call's timeout
    wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every reading")
    alerts = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
    assert alert_ids(alerts) == alert_ids(offline_alerts(bundle, series))  # the aborted commit is void
    del dead
