from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from detector.bundle import Bundle
from detector.clock import ManualClock
from detector.line import SegmentView
from stream.memory import MemoryBroker
from stream.metrics import DetectorMetrics, StationView
from stream.testing import interleave, normal_series
from tests.unit.stream.conftest import T0_MS, ServiceFactory, drain

CONTRACTS = Path(__file__).resolve().parents[3] / "docs" / "contracts.md"


def contract_names() -> set[str]:
    text = CONTRACTS.read_text()
    section = text[text.index("## Metrics") :]
    found = re.findall(r"`([a-z_]+)(?:\{[^}]*\})?`", section)
    labels = {"station", "partition", "outcome", "reason", "kind", "status", "severity", "segment"}
    return {name for name in found if name not in labels and not name.endswith("_")}


def exposed(registry: CollectorRegistry) -> set[str]:
    """Family names without the prefix (counters without ``_total``, as the client names them)."""
    assert generate_latest(registry)  # the whole exposition renders
    return {family.name.removeprefix("centinela_") for family in registry.collect()}


def test_every_metric_of_the_contract_is_exposed() -> None:
    metrics = DetectorMetrics(CollectorRegistry())
    view = StationView("EST-01", 0.5, 1.0, True, 1_700_000_000.0, 1_700_000_050.0, (("flow", 1.0),))
    metrics.watch_stations(lambda: [view])
    segment = SegmentView("EST-01>EST-02", "L1", 3.5, 12.0, 60.0, None, False)
    metrics.watch_segments(lambda: [segment])
    names = exposed(metrics.registry)
    # Counters are declared without _total in the exposition's TYPE line.
    wanted = {name.removesuffix("_total") for name in contract_names()}
    assert len(wanted) >= 20
    assert wanted <= names, wanted - names


def test_station_gauges_come_from_the_table_at_scrape_time() -> None:
    metrics = DetectorMetrics(CollectorRegistry())
    table = [StationView("EST-01", 0.5, 1.0, True, 1_700_000_000.0, 1_700_000_050.0)]
    metrics.watch_stations(lambda: table, wall=ManualClock.at_unix(1_700_000_080.0))
    registry = metrics.registry
    assert registry.get_sample_value("centinela_score", {"station": "EST-01"}) == 0.5
    assert registry.get_sample_value("centinela_incident_open", {"station": "EST-01"}) == 1
    assert registry.get_sample_value("centinela_data_freshness_seconds", {"station": "EST-01"}) == 30
    table.append(StationView("EST-02", None, None, False, None, None))
    assert registry.get_sample_value("centinela_incident_open", {"station": "EST-02"}) == 0
    assert registry.get_sample_value("centinela_score", {"station": "EST-02"}) is None


def test_counters_exist_at_zero_before_the_first_event() -> None:
    registry = DetectorMetrics(CollectorRegistry()).registry
    labels = {"kind": "incident", "status": "open", "severity": "high"}
    assert registry.get_sample_value("centinela_alerts_total", labels) == 0
    assert registry.get_sample_value("centinela_dead_letters_total", {"reason": "not_json"}) == 0


def test_model_info_and_lag_replace_their_series() -> None:
    metrics = DetectorMetrics(CollectorRegistry())
    metrics.set_model("v1", 1)
    metrics.set_model("v2", 1)
    metrics.set_lag({0: 5, 1: 0})
    metrics.set_lag({1: 2})
    registry = metrics.registry
    assert (
        registry.get_sample_value("centinela_model_info", {"model_version": "v1", "format_version": "1"})
        is None
    )
    assert (
        registry.get_sample_value("centinela_model_info", {"model_version": "v2", "format_version": "1"}) == 1
    )
    assert registry.get_sample_value("centinela_consumer_lag", {"partition": "0"}) is None
    assert registry.get_sample_value("centinela_consumer_lag", {"partition": "1"}) == 2


def test_station_contributions_are_exposed_per_sensor_and_absent_before_an_incident() -> None:
    metrics = DetectorMetrics(CollectorRegistry())
    shares = (("flow", 0.7), ("pressure", 0.3))
    table = [
        StationView("EST-01", 0.5, 1.0, False, None, None, shares),
        StationView("EST-02", 0.5, 1.0, False, None, None),
    ]
    metrics.watch_stations(lambda: table)
    registry = metrics.registry
    labels = {"station": "EST-01", "sensor": "pressure"}
    assert registry.get_sample_value("centinela_incident_contribution", labels) == 0.3
    exposition = generate_latest(registry).decode()
    assert 'centinela_incident_contribution{sensor="flow",station="EST-02"}' not in exposition
    assert exposition.count("centinela_incident_contribution{") == 2


def _contribution_shares(registry: CollectorRegistry, station: str) -> dict[str, float]:
    return {
        sample.labels["sensor"]: sample.value
        for family in registry.collect()
        if family.name == "centinela_incident_contribution"
        for sample in family.samples
        if sample.labels["station"] == station
    }


def test_an_incident_sets_the_sensor_shares_of_its_station(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    # A theft shifting flow (sensor 0) at EST-01; EST-02 stays quiet.
    series = [
        normal_series("EST-01", 720, seed=1, anomalies=[(200, 260, 0, 6.0)]),
        normal_series("EST-02", 720, seed=2),
    ]
    broker = MemoryBroker(topic="centinela.readings")
    for index, value in enumerate(interleave(series, bundle.sensors)):
        broker.append(value[1], key=value[0], partition=0, timestamp_ms=T0_MS + index * 10)
    service = make_service(broker)
    registry = service.metrics.registry
    assert _contribution_shares(registry, "EST-01") == {}
    drain(service)

    shares = _contribution_shares(registry, "EST-01")
    assert set(shares) == set(bundle.sensors)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-6)
    assert max(shares, key=shares.__getitem__) == "flow"
    # Kept after the incident closed, so the drill-down still shows the last one.
    assert registry.get_sample_value("centinela_incident_open", {"station": "EST-01"}) == 0
    assert _contribution_shares(registry, "EST-02") == {}
