"""``bench detector``'s ``NullMonitor`` run: the whole line path, every reading to a monitor, no detection."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from bench.detector import NullMonitor
from detector.bundle import load_bundle
from detector.clock import ManualClock
from detector.onnx_runtime import onnx_scorers
from stream.memory import MemoryBroker
from stream.metrics import DetectorMetrics
from stream.service import DetectorService
from tests.unit.stream.conftest import T0_MS, drain, settings
from tests.unit.stream.lines import line_bundle, readings_of, simulated, topology_of, wire


def test_the_null_monitor_run_feeds_every_reading_and_raises_no_segment_alert(tmp_path: Path) -> None:
    result = simulated(stations=3, days=0.6)  # with a scripted theft: a real monitor opens a tap
    readings = readings_of(result)
    bundle = load_bundle(
        line_bundle(tmp_path / "line", topology_of(result), result.station_ids),
        reconstructor_factory=onnx_scorers(threads=1),
    )
    broker = MemoryBroker(topic="centinela.readings", partitions=3)
    for index, (key, value) in enumerate(wire(readings)):
        broker.append(value, key=key, partition=(int(key[-2:]) - 1) % 3, timestamp_ms=T0_MS + index * 1000)
    registry = CollectorRegistry()
    made = DetectorService(
        settings(max_batch=500),
        broker,
        bundle,
        DetectorMetrics(registry),
        clock=ManualClock.at_unix(T0_MS / 1000),
        monitor_factory=NullMonitor,  # type: ignore[arg-type]
    )
    broker.start(made, int(made.rebuild_horizon().total_seconds() * 1000), made.line_topic)
    drain(made)
    assert registry.get_sample_value("centinela_line_readings_total") == len(readings)
    assert not any(b'"tap"' in (m.value() or b"") for m in broker.published.get("centinela.alerts", []))
