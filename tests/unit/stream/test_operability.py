"""Operability without Kafka: the topic plan, the alerts viewer, log level and client log lines,
the metrics port, health and readiness, and stopping while Kafka does not answer."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from centinela.logs import LEVEL_ENV, level_from_environment
from detector.clock import ManualClock
from detector.errors import ConfigError
from stream.alerts_view import AlertFilter, alert_row, format_table
from stream.client_logs import RepeatFilter
from stream.health import Health, serve_endpoints
from stream.metrics import DetectorMetrics
from stream.runner import serve_or_explain
from stream.settings import Settings
from stream.topics import DAY_MS, topic_plan


def test_the_plan_names_every_configured_topic_with_its_role_and_config() -> None:
    settings = Settings(topics={"readings": "r", "alerts": "a", "dlq": "d", "scores": "s", "state": "st"})
    plan = {spec.role: spec for spec in topic_plan(settings, 8, line=True)}
    assert set(plan) == {"readings", "alerts", "dlq", "scores", "state", "line"}
    assert plan["line"].name == "r.line"  # the detector's own default for the internal topic
    assert (plan["readings"].partitions, plan["state"].partitions, plan["line"].partitions) == (8, 8, 8)
    assert plan["alerts"].partitions == 3
    assert plan["state"].config == {"cleanup.policy": "compact"}
    # Alerts are the audit trail: every status kept, never compacted away.
    assert plan["alerts"].config["cleanup.policy"] == "delete"
    assert int(plan["alerts"].config["retention.ms"]) == 365 * DAY_MS
    assert plan["dlq"].setting == "topics.dlq"


def test_the_plan_skips_topics_turned_off_and_refuses_zero_partitions() -> None:
    settings = Settings(topics={"scores": "", "state": ""})
    assert [spec.role for spec in topic_plan(settings)] == ["readings", "alerts", "dlq"]
    with pytest.raises(ConfigError, match="partitions"):
        topic_plan(settings, 0)


TAP = {
    "kind": "tap",
    "status": "open",
    "station_id": "EST-01",
    "segment": {"segment_id": "EST-01>EST-02", "upstream": "EST-01", "downstream": "EST-02"},
    "estimate": {"rate_m3h": 12.34, "volume_m3": 5.0, "location_km": 21.0, "location_sigma_km": 4.0},
    "score": 5.5,
    "severity": "high",
    "window_end": "2026-01-01T00:10:00+00:00",
    "incident_id": "abc",
}
ANOMALY = {"kind": "anomaly", "status": "close", "station_id": "EST-03", "score": 1.2, "incident_id": "def"}


def test_the_filter_matches_a_segment_alert_by_either_station_and_by_segment() -> None:
    assert AlertFilter(stations=frozenset({"EST-02"})).matches(TAP)
    assert not AlertFilter(stations=frozenset({"EST-03"})).matches(TAP)
    assert AlertFilter(segments=frozenset({"EST-01>EST-02"})).matches(TAP)
    assert not AlertFilter(segments=frozenset({"EST-01>EST-02"})).matches(ANOMALY)
    assert AlertFilter(kinds=frozenset({"anomaly"}), statuses=frozenset({"close"})).matches(ANOMALY)
    assert not AlertFilter(kinds=frozenset({"anomaly"}), statuses=frozenset({"open"})).matches(ANOMALY)
    assert AlertFilter().matches({"undecodable": "x"})


def test_a_row_says_where_and_how_much() -> None:
    row = alert_row(TAP)
    assert row[3] == "EST-01>EST-02"
    assert row[6] == "12.3 m3/h, 5.0 m3, km 21.0±4.0"
    lines = format_table([row, alert_row(ANOMALY)])
    assert lines[0].split() == [
        "window_end",
        "kind",
        "status",
        "where",
        "severity",
        "score",
        "estimate",
        "incident_id",
    ]
    assert len(lines) == 3 and "EST-03" in lines[2]


def test_the_log_level_comes_from_the_environment_or_is_refused_by_name() -> None:
    assert level_from_environment(logging.INFO, {}) == logging.INFO
    assert level_from_environment(logging.INFO, {LEVEL_ENV: "warning"}) == logging.WARNING
    with pytest.raises(ConfigError, match=LEVEL_ENV):
        level_from_environment(logging.INFO, {LEVEL_ENV: "loud"})


def test_a_busy_metrics_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"metrics_port {port}.*CENTINELA_METRICS_PORT"):
            serve_or_explain(DetectorMetrics(CollectorRegistry()), "127.0.0.1", port)


def test_liveness_follows_the_loop_and_readiness_the_broker_and_the_transactions() -> None:
    clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    health = Health(stall_s=60, clock=clock)
    assert health.alive()[0] and not health.ready()[0]  # starting: alive, not yet serving
    health.beat()
    health.committed()
    assert health.ready() == (True, {"assigned_partitions": 0, "problems": []})
    health.broker_up = False
    assert health.ready()[1]["problems"] == ["Kafka is unreachable"]
    health.broker_up = True
    clock.advance(10)
    health.aborted()  # one abort is retried: still ready
    assert health.ready()[0]
    clock.advance(61)
    health.beat()
    assert health.ready()[1]["problems"] == ["transactions keep aborting"]
    health.committed()
    assert health.ready()[0]
    clock.advance(61)  # the loop stopped turning
    assert not health.alive()[0]
    assert "has not turned" in health.ready()[1]["problems"][0]


def test_one_port_serves_metrics_health_and_readiness() -> None:
    import json
    import urllib.error
    import urllib.request

    metrics = DetectorMetrics(CollectorRegistry(), Health(stall_s=60))
    server, port = serve_endpoints(metrics.registry, metrics.health, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        body = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert "centinela_readings_total" in body and "process_resident_memory_bytes" in body
        assert json.loads(urllib.request.urlopen(base + "/healthz", timeout=5).read())["ok"] is True
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/readyz", timeout=5)
        assert refused.value.code == 503
        assert json.loads(refused.value.read())["problems"] == ["the consume loop has not started"]
        metrics.health.beat()
        assert json.loads(urllib.request.urlopen(base + "/readyz", timeout=5).read())["ok"] is True
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(base + "/nothing", timeout=5)
    finally:
        server.shutdown()
        server.server_close()


def test_repeated_client_log_lines_are_let_through_once_a_minute_with_their_count() -> None:
    clock = ManualClock(datetime(2025, 1, 1, tzinfo=UTC))
    repeats = RepeatFilter(every_s=60, clock=clock)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("librdkafka", logging.ERROR, "", 0, "%s", (message,), None)

    assert repeats.filter(record("Connect to 127.0.0.1:1 failed (after 0ms)"))
    assert not any(
        repeats.filter(record(f"Connect to 127.0.0.1:1 failed (after {ms}ms)")) for ms in range(50)
    )
    assert repeats.filter(record("another problem"))
    clock.advance(61)
    shown = record("Connect to 127.0.0.1:1 failed (after 3ms)")
    assert repeats.filter(shown)
    assert shown.getMessage().endswith("(+50 repeats in the last 60 s)")


@pytest.mark.slow  # 2 s of a real detector against no Kafka
def test_sigterm_while_kafka_does_not_answer_stops_the_detector_in_seconds(tmp_path: Path) -> None:
    import threading
    import time

    from devtools.stand_ins import build_linear_bundle
    from stream.runner import run_detector

    settings = Settings(
        kafka={"bootstrap_servers": "127.0.0.1:1"},  # nothing listens
        bundle_path=build_linear_bundle(tmp_path / "bundle"),
        metrics_enabled=False,
        instance_id="unreachable",
    )
    stop = threading.Event()
    outcome: list[BaseException | None] = []

    def serve() -> None:
        try:
            run_detector(settings, stop=stop, registry=CollectorRegistry())
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    time.sleep(2.0)  # inside the connection check (15 s) or, later, waiting for transactions
    stop.set()
    stopped = time.monotonic()
    thread.join(10)
    assert not thread.is_alive(), "the detector ignored the stop while Kafka did not answer"
    assert time.monotonic() - stopped < 5
    assert outcome in ([None],) or "stopped while waiting for Kafka" in str(outcome[0])


def test_json_log_lines_carry_context_fields_given_by_the_call() -> None:
    import json

    from centinela.logs import JsonLineFormatter

    record = logging.LogRecord(
        "stream.service", logging.WARNING, "", 0, "tap on %s", ("EST-01>EST-02",), None
    )
    record.segment = "EST-01>EST-02"
    record.partition = 3
    line = json.loads(JsonLineFormatter().format(record))
    assert line["message"] == "tap on EST-01>EST-02"
    assert (line["segment"], line["partition"], line["level"]) == ("EST-01>EST-02", 3, "WARNING")
    assert "station" not in line
