"""Segments in the live path: the service's line monitors see what the offline oracle sees."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detector.bundle import Bundle, load_bundle
from detector.clock import ManualClock
from detector.incidents import Alert
from detector.line.offline import line_alerts
from detector.line_table import line_monitor
from detector.onnx_runtime import onnx_scorers
from stream.memory import MemoryBroker
from stream.metrics import DetectorMetrics
from stream.service import DetectorService
from tests.unit.stream.conftest import T0_MS, drain, settings
from tests.unit.stream.lines import (
    FakeMonitor,
    Reading,
    fake_offline,
    line_bundle,
    readings_of,
    simulated,
    topology_of,
    wire,
)

TOPIC = "centinela.readings"
STATE = "centinela.state"


@pytest.fixture(scope="module")
def result() -> Any:
    return simulated(stations=3, days=0.6)


@pytest.fixture(scope="module")
def readings(result: Any) -> list[Reading]:
    return readings_of(result)


@pytest.fixture
def bundle(tmp_path: Path, result: Any) -> Bundle:
    folder = line_bundle(tmp_path / "line", topology_of(result), result.station_ids)
    return load_bundle(folder, reconstructor_factory=onnx_scorers(threads=1))


def feed(broker: MemoryBroker, readings: Sequence[Reading], partitions: int) -> None:
    """Keyed by station (as producers do), one station per partition modulo ``partitions``."""
    for index, (key, value) in enumerate(wire(readings)):
        partition = (int(key[-2:]) - 1) % partitions
        broker.append(value, key=key, partition=partition, timestamp_ms=T0_MS + index * 1000)


def service(broker: MemoryBroker, bundle: Bundle, fake: bool, **overrides: Any) -> DetectorService:
    made = DetectorService(
        settings(**overrides),
        broker,
        bundle,
        DetectorMetrics(CollectorRegistry()),
        clock=ManualClock.at_unix(T0_MS / 1000),
        monitor_factory=FakeMonitor if fake else line_monitor,  # type: ignore[arg-type]
    )
    broker.start(made, int(made.rebuild_horizon().total_seconds() * 1000), made.line_topic)
    return made


def segment_alerts(broker: MemoryBroker) -> list[dict[str, Any]]:
    alerts = [orjson.loads(value) for value in broker.values("centinela.alerts")]
    return [alert for alert in alerts if alert["kind"] in ("tap", "meter_fault")]


def ids(alerts: Sequence[Alert | dict[str, Any]]) -> list[str]:
    return [a.alert_id if isinstance(a, Alert) else a["alert_id"] for a in alerts]


def settled(alerts: Sequence[Alert], readings: Sequence[Reading]) -> list[Alert]:
    """The oracle's alerts without those only the end of input (``flush``) decides."""
    last = readings[-1][1] - timedelta(minutes=10)
    return [alert for alert in alerts if alert.window_end <= last]


@pytest.mark.parametrize(("max_batch", "interleave"), [(37, True), (5000, True), (100, False)])
def test_segment_alerts_equal_the_offline_fake_with_stations_spread_over_partitions(
    bundle: Bundle, readings: list[Reading], max_batch: int, interleave: bool
) -> None:
    assert bundle.topology is not None
    reference = fake_offline(readings, bundle.topology)
    assert [a.status for a in reference][:1] == ["open"]  # the scripted theft is seen
    # interleave False: one station's whole history arrives before the next one's (a backlog).
    broker = MemoryBroker(topic=TOPIC, partitions=3, interleave=interleave)
    feed(broker, readings, partitions=3)
    drain(service(broker, bundle, fake=True, max_batch=max_batch))
    live = segment_alerts(broker)
    assert ids(live) == ids(reference)
    assert {m.key() for m in broker.published["centinela.alerts"] if b'"tap"' in (m.value() or b"")} == {
        b"EST-01"
    }


def test_segment_alerts_equal_the_offline_oracle(bundle: Bundle, readings: list[Reading]) -> None:
    assert bundle.topology is not None and bundle.line_calibration is not None
    reference = settled(
        line_alerts(readings, bundle.topology, bundle.line_calibration, model_version=bundle.model_version),
        readings,
    )
    broker = MemoryBroker(topic=TOPIC, partitions=3)
    feed(broker, readings, partitions=3)
    drain(service(broker, bundle, fake=False, max_batch=200))
    live = [a for a in segment_alerts(broker) if a["window_end"] <= max(ids_end(reference), default="")]
    assert ids(live) == ids(reference)


def ids_end(alerts: Sequence[Alert]) -> list[str]:
    return [orjson.loads(a.to_json_bytes())["window_end"] for a in alerts]


def test_a_restart_continues_the_segment_state_from_the_state_topic(
    bundle: Bundle, readings: list[Reading]
) -> None:
    assert bundle.topology is not None
    reference = fake_offline(readings, bundle.topology)
    broker = MemoryBroker(topic=TOPIC, partitions=3, state_topic=STATE)
    feed(broker, readings, partitions=3)
    first = service(broker, bundle, fake=True, max_batch=100, topics={"state": STATE})
    while len(segment_alerts(broker)) < 1:  # crash with the tap open
        first.step()
    drain(service(broker, bundle, fake=True, max_batch=100, topics={"state": STATE}))
    live = segment_alerts(broker)
    assert ids(live) == ids(reference)
    assert len({a["incident_id"] for a in live}) == 1
    states = [m for m in broker.published[STATE] if (m.key() or b"").startswith(b"line/")]
    assert states and all(m.partition() == 0 for m in states)


def test_a_station_incident_at_a_tapped_segment_names_the_tap(
    tmp_path: Path, result: Any, readings: list[Reading]
) -> None:
    # A threshold every window crosses: each station sits in one incident, updated every 15 minutes.
    folder = line_bundle(tmp_path / "touchy", topology_of(result), result.station_ids, threshold=1e-9)
    bundle = load_bundle(folder, reconstructor_factory=onnx_scorers(threads=1))
    broker = MemoryBroker(topic=TOPIC, partitions=3)
    made = service(broker, bundle, fake=True, max_batch=100)
    for first in range(0, len(readings), 30):  # live: ten minutes at a time, each handled as it comes
        feed(broker, readings[first : first + 30], partitions=3)
        drain(made)
    alerts = [orjson.loads(value) for value in broker.values("centinela.alerts")]
    taps = {a["incident_id"] for a in alerts if a["kind"] == "tap"}
    linked = [a for a in alerts if a["kind"] == "incident" and a["status"] in ("open", "update")]
    near = [a for a in linked if a["related"]]
    assert near, "station incident updates during the tap name it"
    assert {a["station_id"] for a in near} == {"EST-01", "EST-02"}  # both ends, not EST-03
    assert all(set(a["related"]) == taps for a in near)
    opened = next(a for a in alerts if a["kind"] == "tap" and a["status"] == "open")
    assert len(opened["related"]) == 2  # the reverse: the station incidents open at both ends
    registry = made.metrics.registry
    assert registry.get_sample_value("centinela_line_readings_total") == len(readings)
    assert registry.get_sample_value("centinela_off_line_readings_total") == 0
    assert registry.get_sample_value("centinela_segment_degraded", {"segment": "EST-01>EST-02"}) == 0
    tap_alerts = registry.get_sample_value(
        "centinela_alerts_total", {"kind": "tap", "status": "open", "severity": "low"}
    )
    assert tap_alerts == 1


def test_readings_of_stations_off_the_line_are_scored_and_counted(
    bundle: Bundle, readings: list[Reading]
) -> None:
    outsider = [("EST-09", ts, values) for sid, ts, values in readings if sid == "EST-01"]
    broker = MemoryBroker(topic=TOPIC, partitions=1)
    feed(broker, outsider[:120], partitions=1)
    made = service(broker, bundle, fake=True)
    drain(made)
    registry = made.metrics.registry
    assert registry.get_sample_value("centinela_off_line_readings_total") == 120
    assert registry.get_sample_value("centinela_line_readings_total") == 0
    assert registry.get_sample_value("centinela_windows_scored_total")


def test_without_a_line_no_segment_state_is_kept(tmp_path: Path, readings: list[Reading]) -> None:
    from devtools.stand_ins import build_linear_bundle
    from tests.unit.stream.lines import LINE_SENSORS

    plain = load_bundle(
        build_linear_bundle(tmp_path / "plain", sensors=LINE_SENSORS, threshold=50.0),
        reconstructor_factory=onnx_scorers(threads=1),
    )
    broker = MemoryBroker(topic=TOPIC, partitions=1, state_topic=STATE)
    feed(broker, readings[:300], partitions=1)
    made = service(broker, plain, fake=True, topics={"state": STATE})
    drain(made)
    assert made.lines is None
    assert not any((m.key() or b"").startswith(b"line/") for m in broker.published.get(STATE, []))
    assert made.metrics.registry.get_sample_value("centinela_off_line_readings_total") == 0


def test_a_topology_file_must_equal_the_bundle_line(tmp_path: Path, result: Any, bundle: Bundle) -> None:
    from detector.errors import ConfigError
    from devtools.stand_ins import build_linear_bundle
    from stream.runner import load_serving_bundle

    same = tmp_path / "same.toml"
    same.write_text(topology_of(result).to_toml())
    served = load_serving_bundle(settings(bundle_path=bundle.path, topology=same))
    assert served.topology == topology_of(result)
    other = topology_of(result).to_dict()
    other["line"][0]["segment"][1]["length_km"] += 1.0
    moved = tmp_path / "moved.toml"
    moved.write_text(type(topology_of(result)).from_dict(other).to_toml())
    with pytest.raises(ConfigError, match=r"line\[0\]\.segment\[1\]\.length_km differs"):
        load_serving_bundle(settings(bundle_path=bundle.path, topology=moved))
    plain = build_linear_bundle(tmp_path / "plain")
    with pytest.raises(ConfigError, match="has no line"):
        load_serving_bundle(settings(bundle_path=plain, topology=same))
