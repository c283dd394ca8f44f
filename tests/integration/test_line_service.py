"""Segments through a real broker: readings keyed by station, several instances, the internal line
topic, failover. Segment alerts must be the offline oracle's, exactly once.

The in-process tests run the service with a fake line monitor (``tests/unit/stream/lines.py``): its
taps follow from the flows alone, so what they check is the plumbing (repartition, ownership, state
carried through the state topic) with alerts to compare whatever the real monitor's sensitivity. The
subprocess test (SIGKILLs) runs ``centinela detect`` with the bundle's real ``LineMonitor``.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detector.bundle import load_bundle
from detector.line.offline import line_alerts
from detector.line_table import line_monitor
from detector.onnx_runtime import onnx_scorers
from detector.testing import LINE_SENSORS
from devtools.stand_ins import build_linear_bundle
from stream.runner import run_detector
from tests.integration.detector_process import (
    detector_settings,
    start_detector,
    stop,
    wait_until_read,
)
from tests.integration.detector_topics import Topics, produce, read_topic
from tests.integration.kafka_helpers import TopicFactory, unique_name
from tests.integration.local_ports import free_port
from tests.integration.polling import wait_for
from tests.unit.stream.lines import (
    FakeMonitor,
    Reading,
    calibration_of,
    fake_offline,
    readings_of,
    simulated,
    topology_of,
    wire,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Reading], Any]:
    result = simulated(stations=3, days=0.6)
    topology = topology_of(result)
    folder = tmp_path_factory.mktemp("line") / "bundle"
    build_linear_bundle(
        folder,
        sensors=LINE_SENSORS,
        threshold=50.0,
        stations=result.station_ids,
        line=(topology, calibration_of(topology)),
    )
    return folder, readings_of(result), topology


def publish(bootstrap: str, topic: str, readings: list[Reading], first: int = 0) -> None:
    """Keyed by station (the default partitioner spreads them); produce time follows event time,
    20 s a reading, ending about now (older stamps fall to the broker's retention mid-test)."""
    now_ms = int(time.time() * 1000) - (first + len(readings)) * 20_000 - 60_000
    stamps = [now_ms + (first + i) * 20_000 for i in range(len(readings))]
    produce(bootstrap, topic, list(wire(readings)), stamps)  # type: ignore[arg-type]


def segment_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    alerts = [orjson.loads(m.value()) for m in read_topic(bootstrap, topic)]
    return [a for a in alerts if a["kind"] in ("tap", "meter_fault")]


class Instance:
    """One detector in a thread of this process (``stop()`` is SIGTERM's path: finish, commit, leave)."""

    def __init__(self, settings: Any, fake: bool = True) -> None:
        self.stop_event = threading.Event()
        self.registry = CollectorRegistry()
        self.thread = threading.Thread(
            target=run_detector,
            args=(settings,),
            kwargs={
                "stop": self.stop_event,
                "registry": self.registry,
                "monitor_factory": FakeMonitor if fake else line_monitor,
            },
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("fake", [True, False], ids=["fake-monitor", "line-monitor"])
def test_two_instances_with_a_line_give_the_oracle_segment_alerts_and_one_leaving_loses_nothing(
    kafka_bootstrap: str,
    fresh_topic: TopicFactory,
    fresh_group: str,
    line: tuple[Path, list[Reading], Any],
    fake: bool,
) -> None:
    bundle, readings, topology = line
    loaded = load_bundle(bundle, reconstructor_factory=onnx_scorers(threads=1))
    assert loaded.line_calibration is not None
    if fake:
        reference = [a.alert_id for a in fake_offline(readings, topology, loaded.model_version)]
    else:  # the oracle's alerts, less those only the end of input decides (a live run never ends)
        oracle = line_alerts(readings, topology, loaded.line_calibration, model_version=loaded.model_version)
        last = readings[-1][1]
        reference = [a.alert_id for a in oracle if (last - a.window_end).total_seconds() > 600]
    assert len(reference) >= 2  # the scripted theft opens and closes a tap
    topics = Topics(fresh_topic, partitions=3, line=True)
    half = len(readings) // 2
    publish(kafka_bootstrap, topics.readings, readings[:half])

    def settings() -> Any:
        return detector_settings(kafka_bootstrap, topics, fresh_group, bundle, max_batch=40)

    # A alone reads the first half; B joins (each side restores what it is given from the state
    # topic); the second half arrives; A leaves mid-stream and B takes every partition over.
    first = Instance(settings(), fake)
    wait_for(lambda: topics.settled(kafka_bootstrap, fresh_group), 90, "A to read the first half")
    second = Instance(settings(), fake)
    time.sleep(3.0)  # the rebalance
    publish(kafka_bootstrap, topics.readings, readings[half:], first=half)
    time.sleep(0.5)
    first.stop()
    try:
        wait_for(lambda: topics.settled(kafka_bootstrap, fresh_group), 120, "B to finish")
        time.sleep(1.0)
    finally:
        second.stop()
    live = [a["alert_id"] for a in segment_alerts(kafka_bootstrap, topics.alerts)]
    assert len(set(live)) == len(live)
    assert live[: len(reference)] == reference
    if fake:
        assert live == reference
    # Which instance fed the lines depends on how fast the rebalance went; together they did.
    fed = [i.registry.get_sample_value("centinela_line_readings_total") or 0.0 for i in (first, second)]
    assert sum(fed) > 0


def test_sigkills_leave_the_segment_alerts_of_an_uninterrupted_run(
    kafka_bootstrap: str,
    fresh_topic: TopicFactory,
    fresh_group: str,
    tmp_path: Path,
    line: tuple[Path, list[Reading], Any],
) -> None:
    """``centinela detect`` (the real monitor), SIGKILLed twice mid-stream and restarted, against
    one uninterrupted run and the offline oracle."""
    bundle, readings, topology = line
    loaded = load_bundle(bundle, reconstructor_factory=onnx_scorers(threads=1))
    assert loaded.line_calibration is not None
    oracle = line_alerts(readings, topology, loaded.line_calibration, model_version=loaded.model_version)
    last = readings[-1][1]
    settled_ids = {a.alert_id for a in oracle if (last - a.window_end).total_seconds() > 600}

    def run(group: str, kills: int) -> list[dict[str, Any]]:
        topics = Topics(fresh_topic, partitions=3, line=True)
        publish(kafka_bootstrap, topics.readings, readings)
        rng = random.Random(5)
        log = tmp_path / f"{group}.log"
        for attempt in range(kills + 1):
            port = free_port()
            process = start_detector(
                kafka_bootstrap,
                topics,
                group,
                bundle,
                log,
                instance_id=f"{group}-slot",
                max_batch="20",
                metrics_port=str(port),
            )
            try:
                if attempt < kills:
                    wait_until_read(
                        process, port, int(len(readings) * (attempt + rng.uniform(0.2, 0.4)) / kills)
                    )
                    process.kill()
                    process.wait(10)
                    continue
                wait_for(lambda: topics.settled(kafka_bootstrap, group), 120, "the last run")
            finally:
                if process.poll() is None:
                    stop(process)
        return segment_alerts(kafka_bootstrap, topics.alerts)

    reference = run(unique_name("line-ref"), kills=0)
    killed = run(unique_name("line-killed"), kills=2)
    seen = [(a["status"], a["window_end"]) for a in killed]
    wanted = [(a["status"], a["window_end"]) for a in reference]
    assert [a["alert_id"] for a in killed] == [a["alert_id"] for a in reference], (seen, wanted)
    assert len({a["alert_id"] for a in killed}) == len(killed)
    assert settled_ids <= {a["alert_id"] for a in reference}
