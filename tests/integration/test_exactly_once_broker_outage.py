"""Exactly the reference alerts when the broker is stopped for 20 s mid-replay and comes back.

Runs its own broker (own home and ports) so the shared session broker is never stopped. On this
broker and librdkafka the first transaction after the restart reliably hangs inside
``send_offsets_to_transaction`` (librdkafka#5456/#5511): the test also proves the service's way out
(abandon the stuck producer, fence its transaction with a new one, rebuild from committed offsets)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.detector_process import start_detector, stop, wait_until_read
from tests.integration.detector_topics import (
    Topics,
    assert_same_alerts,
    committed_alerts,
    comparable,
    settled,
)
from tests.integration.kafka_helpers import unique_name
from tests.integration.local_ports import free_port
from tests.integration.own_broker import OwnBroker
from tests.integration.polling import wait_for
from tests.integration.theft_replay import replay, simulate_theft_line

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]


@pytest.fixture
def broker(own_home: Path) -> Iterator[OwnBroker]:
    own = OwnBroker(own_home)
    own.start()
    try:
        yield own
    finally:
        own.stop()


def test_a_broker_stopped_for_20_s_leaves_exactly_the_reference_alerts(
    broker: OwnBroker, tmp_path: Path
) -> None:
    line = simulate_theft_line(tmp_path / "line")
    bootstrap = broker.bootstrap

    reference_topics = Topics(broker.topic, partitions=3)
    reference_group = unique_name("reference")
    replay(bootstrap, reference_topics.readings, line)
    process = start_detector(
        bootstrap, reference_topics, reference_group, line.bundle, tmp_path / "ref.log", max_batch="50"
    )
    try:
        wait_for(lambda: settled(bootstrap, reference_group, reference_topics.readings), 90, "reference")
    finally:
        stop(process)
    alerts = committed_alerts(bootstrap, reference_topics.alerts)
    assert len(alerts) >= 6 and line.theft_incidents(alerts)
    reference = {a["alert_id"]: comparable(a) for a in alerts}

    topics = Topics(broker.topic, partitions=3)
    group = unique_name("outage")
    (half,) = line.time_cuts(random.Random(11), 1)
    first_half = replay(bootstrap, topics.readings, line, end=half)
    log = tmp_path / "outage.log"
    port = free_port()
    process = start_detector(
        bootstrap, topics, group, line.bundle, log, max_batch="20", metrics_port=str(port)
    )
    try:
        wait_until_read(process, port, first_half // 3)  # mid-stream
        broker.stop()
        time.sleep(20.0)
        assert process.poll() is None, "the detector gave up within the outage limit"
        broker.start()
        replay(bootstrap, topics.readings, line, start=half)
        wait_for(lambda: settled(bootstrap, group, topics.readings), 120, "the rest after the outage")
    finally:
        stop(process)
    assert_same_alerts(committed_alerts(bootstrap, topics.alerts), reference)
    said = log.read_text(errors="replace")
    assert "Kafka unreachable" in said and "Kafka reachable again" in said, "the outage went unreported"
