"""A real Prometheus (Debian's) scrapes the running detector; PromQL gives back what the detector did."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.bundle import load_bundle
from detector.onnx_runtime import onnx_scorers
from devtools.stand_ins import build_linear_bundle
from stream.testing import interleave, normal_series, offline_alerts
from tests.integration.detector_process import detector_settings
from tests.integration.detector_topics import Topics, committed_all, produce, read_topic
from tests.integration.kafka_helpers import TopicFactory
from tests.integration.polling import wait_for
from tests.integration.prometheus_server import running_prometheus, wait_for_scrapes

pytestmark = pytest.mark.integration

OPENED = 'centinela_alerts_total{kind="incident",status="open"}'


def value(result: list[dict[str, Any]]) -> float:
    assert result, "the query returned no series"
    return float(result[0]["value"][1])


def test_prometheus_sees_the_alert_rate_the_detector_published(
    kafka_bootstrap: str,
    fresh_topic: TopicFactory,
    fresh_group: str,
    tmp_path: Path,
    in_process: Any,
) -> None:
    bundle_path = build_linear_bundle(tmp_path / "bundle", threshold=1.0)
    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    series = [
        normal_series("EST-01", 400, seed=31, anomalies=[(100, 140, 0, 6.0), (300, 330, 1, 8.0)]),
        normal_series("EST-02", 400, seed=32, anomalies=[(200, 260, 4, 7.0)]),
        normal_series("EST-03", 400, seed=33),
    ]
    expected_opened = sum(
        1 for a in offline_alerts(bundle, series) if a.kind == "incident" and a.status == "open"
    )
    assert expected_opened >= 3
    topics = Topics(fresh_topic, partitions=1)
    running = in_process(detector_settings(kafka_bootstrap, topics, fresh_group, bundle_path))
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    with running_prometheus([f"127.0.0.1:{running.metrics_port}"], workdir) as prometheus:
        wait_for_scrapes(prometheus, scrapes=3)
        assert value(prometheus.query(f"sum({OPENED})")) == 0  # the series exist before the first alert
        produce(kafka_bootstrap, topics.readings, interleave(series, bundle.sensors))
        wait_for(lambda: committed_all(kafka_bootstrap, fresh_group, topics.readings), 60, "every reading")
        published = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.alerts)]
        opened = sum(1 for a in published if a["kind"] == "incident" and a["status"] == "open")
        assert opened == expected_opened
        time.sleep(2.5)  # two more scrapes after the last commit

        assert value(prometheus.query(f"sum({OPENED})")) == opened
        # The rate over the last minute, integrated back over that minute, gives the count again
        # (within Prometheus' extrapolation at the edges of the sampled interval).
        assert value(prometheus.query(f"sum(increase({OPENED}[1m]))")) == pytest.approx(opened, rel=0.35)
        assert value(prometheus.query(f"sum(rate({OPENED}[1m])) * 60")) == pytest.approx(opened, rel=0.35)
        by_station = prometheus.query("max by (station) (centinela_threshold)")
        assert {series["metric"]["station"] for series in by_station} == {"EST-01", "EST-02", "EST-03"}
        accepted = 'centinela_readings_total{outcome="accepted"}'
        assert value(prometheus.query(accepted)) == sum(len(s.ts) for s in series)
