"""Every PromQL expression of every dashboard panel and alert rule, run against a real Prometheus.

A Prometheus (Debian's /usr/bin/prometheus: free port, temporary storage, 1 s scrapes and rule
evaluation) loads the repository's rule files and scrapes a target. Each dashboard expression must
return data, and every series selector inside each alert rule must too: a typo, or a metric or label
the service does not expose, comes back empty and fails here rather than on the operators' wall.

The first test points Prometheus at a small exporter that serves every metric of the contract with
made-up values, which proves the checks themselves (and that the tap and meter-fault rules fire);
the second at the real detector, serving a bundle with a line topology (so the segment series
exist) and fed by replay with thefts, where the theft alert must fire.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from devtools import dashboards
from tests.integration.local_ports import free_port
from tests.integration.polling import wait_for
from tests.integration.prometheus_server import Prometheus, running_prometheus, wait_for_scrapes

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
THEFT_ALERT = "CentinelaTheftIncidentOpen"
TAP_ALERT = "CentinelaTapIncidentOpen"
METER_FAULT_ALERT = "CentinelaMeterFault"
SEGMENTS = ("EST-01>EST-02", "EST-02>EST-03")

# Identifiers that are PromQL syntax, not metric names.
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_SELECTOR = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?")


def vector_selectors(expr: str) -> list[str]:
    """The series selectors of a PromQL expression (``name{matchers}``), without functions,
    keywords, grouping labels, ranges or numbers. Good for the expressions of this repository;
    not a PromQL parser."""
    text = _RANGE.sub(" ", _GROUPING.sub(" ", expr))
    selectors = []
    for match in _SELECTOR.finditer(text):
        name, matchers = match.group(1), match.group(2) or ""
        if name in _KEYWORDS or (not matchers and text[match.end() :].lstrip().startswith("(")):
            continue
        selectors.append(name + matchers)
    return selectors


def test_vector_selectors_finds_series_not_syntax() -> None:
    expr = (
        'max by (station) (centinela_score / centinela_threshold{station="A"}) and on (station) '
        "deriv(sum(max by (partition) (centinela_consumer_lag))[15m:1m]) > bool 0.5 unless "
        'absent(up{job="centinela"}) offset 6h'
    )
    assert vector_selectors(expr) == [
        "centinela_score",
        'centinela_threshold{station="A"}',
        "centinela_consumer_lag",
        'up{job="centinela"}',
    ]


def dashboard_problems(prometheus: Prometheus, station: str, window_s: int = 60) -> list[str]:
    """Dashboard expressions (variables filled in: ``station``, every segment) that return no data
    over the last ``window_s``."""
    problems = []
    for board in dashboards.load_dashboards():
        for query in dashboards.panel_queries(board):
            expr = dashboards.as_promql(query.expr, {"station": station, "segment": ".*"})
            if not prometheus.query_range(expr, window_s):
                problems.append(f"{query.dashboard} / {query.panel}: no data for {expr}")
    return problems


def rule_problems(prometheus: Prometheus) -> list[str]:
    """Rules Prometheus could not evaluate, and series selectors inside rules that match nothing."""
    rules = prometheus.rules()
    assert rules, "Prometheus loaded no rules"
    problems = []
    for rule in rules:
        if rule.get("health") == "err":
            problems.append(f"{rule['name']}: {rule.get('lastError')}")
        prometheus.query(rule["query"])  # raises on a query Prometheus refuses
        for selector in vector_selectors(rule["query"]):
            if not prometheus.query(selector):
                problems.append(f"{rule['name']}: no data for {selector}")
    return problems


def _fires(prometheus: Prometheus, alertname: str) -> Callable[[], bool]:
    return lambda: bool(prometheus.firing(alertname))


class _FakeExporter:
    """The gauges and counters a test flips to make an alert fire."""

    def __init__(self, incident_open: Gauge, segment_incident_open: Gauge, alerts: Counter) -> None:
        self.incident_open = incident_open
        self.segment_incident_open = segment_incident_open
        self.alerts = alerts


def _fake_exporter(registry: CollectorRegistry) -> _FakeExporter:
    """Every metric of docs/contracts.md with plausible values (the process metrics are this
    process's own)."""
    ProcessCollector(registry=registry)
    readings = Counter("centinela_readings", "readings", ["outcome"], registry=registry)
    for outcome, count in (("accepted", 900), ("late", 3), ("duplicate", 2), ("invalid", 5)):
        readings.labels(outcome).inc(count)
    Counter("centinela_windows_scored", "windows", registry=registry).inc(120)
    Counter("centinela_windows_skipped", "skipped", ["reason"], registry=registry).labels("coverage").inc(4)
    score = Gauge("centinela_score", "score", ["station"], registry=registry)
    threshold = Gauge("centinela_threshold", "threshold", ["station"], registry=registry)
    incident_open = Gauge("centinela_incident_open", "open", ["station"], registry=registry)
    freshness = Gauge("centinela_data_freshness_seconds", "age", ["station"], registry=registry)
    last_ts = Gauge("centinela_last_reading_timestamp_seconds", "ts", ["station"], registry=registry)
    for i, station in enumerate(("EST-01", "EST-02")):
        score.labels(station).set(0.1 + i)
        threshold.labels(station).set(0.5)
        incident_open.labels(station).set(0)
        freshness.labels(station).set(60)
        last_ts.labels(station).set_function(time.time)  # a new reading at every scrape
    contribution = Gauge(
        "centinela_incident_contribution", "shares", ["station", "sensor"], registry=registry
    )
    for sensor, share in (("flow", 0.6), ("pressure", 0.25), ("pump_rpm", 0.1), ("power", 0.05)):
        contribution.labels("EST-01", sensor).set(share)
    alerts = Counter("centinela_alerts", "alerts", ["kind", "status", "severity"], registry=registry)
    alerts.labels("incident", "open", "high").inc()
    alerts.labels("tap", "open", "high")  # created at 0, as the service does for every label set
    alerts.labels("meter_fault", "open", "low")
    Gauge("centinela_open_incidents", "open", registry=registry).set(0)
    Histogram("centinela_scoring_seconds", "scoring", registry=registry).observe(0.01)
    Histogram("centinela_decision_latency_seconds", "latency", registry=registry).observe(0.2)
    Histogram("centinela_batch_windows", "batch", buckets=(1, 8, 64, 512), registry=registry).observe(6)
    Gauge("centinela_consumer_lag", "lag", ["partition"], registry=registry).labels("0").set(3)
    Counter("centinela_dead_letters", "dlq", ["reason"], registry=registry).labels("not_json").inc(5)
    Gauge("centinela_model_info", "model", ["model_version", "format_version"], registry=registry).labels(
        "20250101T000000Z", "1"
    ).set(1)
    Counter("centinela_model_reload_failures", "failures", registry=registry)
    Counter("centinela_model_reloads", "reloads", registry=registry).inc()
    Gauge("centinela_broker_up", "broker", registry=registry).set(1)
    Counter("centinela_rebuilt_readings", "rebuilt", registry=registry)
    transactions = Counter("centinela_transactions", "transactions", ["outcome"], registry=registry)
    transactions.labels("committed").inc(40)
    transactions.labels("aborted")
    Counter("centinela_line_readings", "line", registry=registry).inc(300)
    Counter("centinela_off_line_readings", "off line", registry=registry)
    segment_gauges = {
        name: Gauge(f"centinela_segment_{name}", name, ["segment"], registry=registry)
        for name in ("balance_m3h", "statistic", "limit", "degraded", "incident_open")
    }
    for i, segment in enumerate(SEGMENTS):
        for name, value in (
            ("balance_m3h", 0.4 + i),
            ("statistic", 1.5),
            ("limit", 8.0),
            ("degraded", i),
            ("incident_open", 0),
        ):
            segment_gauges[name].labels(segment).set(value)
    return _FakeExporter(incident_open, segment_gauges["incident_open"], alerts)


def test_every_expression_returns_data_from_an_exporter_of_the_contract_metrics(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    exporter = _fake_exporter(registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with running_prometheus([f"127.0.0.1:{port}"], tmp_path) as prometheus:
            wait_for_scrapes(prometheus)
            assert dashboard_problems(prometheus, "EST-01") == []
            assert rule_problems(prometheus) == []
            assert prometheus.firing(THEFT_ALERT) == []
            assert prometheus.firing(TAP_ALERT) == []
            assert prometheus.firing(METER_FAULT_ALERT) == []
            # The checks can fail: a misspelt metric comes back empty, a malformed query is refused.
            assert prometheus.query_range("max by (station) (centinela_scores)", 60) == []
            assert prometheus.query("centinela_readings_totl") == []
            with pytest.raises(AssertionError, match="bad_data"):
                prometheus.query("sum by (station (centinela_score)")

            exporter.incident_open.labels("EST-02").set(1)
            exporter.segment_incident_open.labels(SEGMENTS[1]).set(1)
            exporter.alerts.labels("meter_fault", "open", "low").inc()
            for name in (THEFT_ALERT, TAP_ALERT, METER_FAULT_ALERT):
                wait_for(_fires(prometheus, name), 20, f"{name} to fire")
            (alert,) = prometheus.firing(THEFT_ALERT)
            assert alert["labels"]["station"] == "EST-02"
            assert float(alert["value"]) == pytest.approx(1.1 / 0.5)
            (tap,) = prometheus.firing(TAP_ALERT)
            assert tap["labels"]["segment"] == SEGMENTS[1]
            assert float(tap["value"]) == pytest.approx(1.4)
            assert tap["annotations"]["runbook_url"] == "docs/runbook.md#centinelatapincidentopen"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- the real detector -----------------------------------------------------------------------------
def _simulated_file_and_bundle(folder: Path) -> tuple[Path, Path, set[str]]:
    """A 3-station day with a theft that ends (segment 0) and one still going at the end of the
    file (segment 1, so its incident stays open), a 50-minute hole in one station (skipped windows),
    and a linear bundle whose threshold sits well above the quiet windows' scores, with the
    simulated line's topology (so the detector exports the per-segment series).
    Returns the CSV, the bundle and the stations the open theft can show at."""
    import numpy as np
    import pandas as pd

    from detector.bundle import load_bundle, write_bundle
    from detector.onnx_runtime import onnx_scorers
    from detector.scaling import Scaler, StationScalers
    from detector.windows import WindowSpec, batch_windows
    from devtools.stand_ins import linear_onnx_model
    from simulator import SimulationConfig, simulate
    from simulator.event import Event
    from simulator.writer import write_outputs
    from tests.unit.stream.lines import calibration_of, topology_of

    result = simulate(
        SimulationConfig(
            stations=3,
            days=1,
            seed=5,
            scripted=(Event.theft(0, 400, 560, 0.2), Event.theft(1, 1250, 1439, 0.3)),
        )
    )
    csv_path = write_outputs(result, folder / "sim").readings
    frame = pd.read_csv(csv_path)
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    hole_start = stamps.min() + pd.Timedelta(minutes=700)
    hole = (frame["station_id"] == result.station_ids[2]) & stamps.between(
        hole_start, hole_start + pd.Timedelta(minutes=50)
    )
    frame[~hole].to_csv(csv_path, index=False)

    sensors = list(result.readings)
    spec = WindowSpec()
    scalers: dict[str, Scaler] = {}
    quiet: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for station_id in result.station_ids:
        rows = frame[frame["station_id"] == station_id]
        values = rows[sensors].to_numpy(dtype=np.float64)[:380]
        scalers[station_id] = Scaler.fit(values[np.isfinite(values).all(axis=1)])
        times = pd.to_datetime(rows["timestamp"], utc=True).dt.tz_localize(None).to_numpy()[:380]
        quiet[station_id] = (times.astype("datetime64[ns]"), values)

    topology = topology_of(result)

    def bundle_with(threshold: float, name: str) -> Path:
        return write_bundle(
            folder / name,
            onnx_model=linear_onnx_model(spec.samples_per_window, len(sensors)),
            keras_model_file=None,
            model_version="prometheus-itest",
            sensors=sensors,
            window=spec,
            scalers=StationScalers(
                per_station=scalers, fallback=Scaler(np.zeros(len(sensors)), np.ones(len(sensors)))
            ),
            aggregation="mean",
            threshold=threshold,
            line=(topology, calibration_of(topology)),
        )

    probe = load_bundle(bundle_with(1.0, "probe"), reconstructor_factory=onnx_scorers(threads=1))
    quiet_scores: list[float] = []
    for station_id, (times, values) in quiet.items():
        windows = batch_windows(times, values, probe.window_spec)
        quiet_scores += probe.score([station_id] * len(windows.data), windows.data).scores.tolist()
    bundle = bundle_with(3.0 * max(quiet_scores), "bundle")
    return csv_path, bundle, {result.station_ids[1], result.station_ids[2]}


def _diagnosis(prometheus: Prometheus) -> str:
    """What the detector exported, for a failure message."""
    lines = []
    for expr in (
        "centinela_readings_total",
        "centinela_windows_scored_total",
        "centinela_windows_skipped_total",
        "centinela_alerts_total",
        "centinela_incident_open",
        "centinela_score / centinela_threshold",
        "centinela_consumer_lag",
        "centinela_dead_letters_total",
    ):
        for series in prometheus.query(expr):
            lines.append(f"{expr} {series['metric']} = {series['value'][1]}")
    return "\n".join(lines) or "the detector exported nothing"


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def test_every_expression_returns_data_from_the_detector_and_a_replayed_theft_fires_the_alert(
    kafka_bootstrap: str, fresh_topic: Callable[..., str], fresh_group: str, tmp_path: Path
) -> None:
    csv_path, bundle, theft_stations = _simulated_file_and_bundle(tmp_path)
    topics = {
        "READINGS": fresh_topic(3, prefix="readings"),
        "ALERTS": fresh_topic(1, prefix="alerts"),
        "DLQ": fresh_topic(1, prefix="dlq"),
        "SCORES": fresh_topic(1, prefix="scores"),
        "LINE": fresh_topic(3, prefix="line"),  # the bundle has a line: its internal topic and state
        "STATE": fresh_topic(3, prefix="state"),
    }
    metrics_port = free_port()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("CENTINELA_")},
        **{f"CENTINELA_TOPICS__{name}": topic for name, topic in topics.items()},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CENTINELA_GROUP_ID": fresh_group,
        "CENTINELA_INSTANCE_ID": fresh_group,
        "CENTINELA_BUNDLE_PATH": str(bundle),
        "CENTINELA_METRICS_HOST": "127.0.0.1",
        "CENTINELA_METRICS_PORT": str(metrics_port),
        "CENTINELA_LAG_INTERVAL_S": "1",
        "CENTINELA_TRANSACTION_TIMEOUT_S": "10",
    }
    # Two readings the service must refuse, so the dead-letter series exist.
    _produce(
        kafka_bootstrap, topics["READINGS"], [(b"EST-01", b"not json"), (b"EST-01", b'{"station_id": 7}')]
    )
    detector_log = tmp_path / "detector.log"
    with detector_log.open("wb") as log_file:
        detector = subprocess.Popen(
            [sys.executable, "-m", "centinela", "detect"], env=env, cwd=ROOT, stdout=log_file, stderr=log_file
        )
    try:
        with running_prometheus([f"127.0.0.1:{metrics_port}"], tmp_path) as prometheus:
            wait_for_scrapes(prometheus, timeout_s=60)
            replay = subprocess.run(
                [
                    *(sys.executable, "-m", "centinela", "replay", str(csv_path)),
                    *("--topic", topics["READINGS"], "--sensors", "all"),
                ],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert replay.returncode == 0, replay.stderr
            try:
                wait_for(lambda: bool(prometheus.firing(THEFT_ALERT)), 90, f"{THEFT_ALERT} to fire")
            except AssertionError as error:
                raise AssertionError(f"{error}\n{_diagnosis(prometheus)}") from None
            assert {alert["labels"]["station"] for alert in prometheus.firing(THEFT_ALERT)} <= theft_stations
            wait_for(
                lambda: prometheus.query("sum(centinela_consumer_lag) == 0") != [], 30, "the lag to reach 0"
            )
            time.sleep(3)  # a few more scrapes, so rates over the last minute see the whole replay
            # A station with an incident: its drill-down has sensor contributions to show.
            station = prometheus.firing(THEFT_ALERT)[0]["labels"]["station"]
            # One series per declared segment (2: three stations in a row).
            assert len(prometheus.query("centinela_segment_limit")) == 2
            assert dashboard_problems(prometheus, station) == []
            assert rule_problems(prometheus) == []
            assert detector.poll() is None, "the detector stopped"
    finally:
        detector.terminate()
        try:
            detector.wait(30)
        except subprocess.TimeoutExpired:
            detector.kill()
            detector.wait(10)
    assert detector.returncode == 0, detector_log.read_text()[-3000:]
