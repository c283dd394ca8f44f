from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detector.bundle import Bundle
from detector.clock import ManualClock
from stream.memory import MemoryBroker
from stream.metrics import DetectorMetrics
from stream.ports import Mark
from stream.service import DetectorService
from stream.testing import alert_ids, interleave, normal_series, offline_alerts
from tests.unit.stream.conftest import T0_MS, ServiceFactory, drain, settings

TOPIC = "centinela.readings"


def feed(
    broker: MemoryBroker, messages: list[tuple[bytes, bytes]], *, partitions: int = 1, spacing_ms: int = 10
) -> None:
    for index, (key, value) in enumerate(messages):
        partition = int(key[-1:]) % partitions
        broker.append(value, key=key, partition=partition, timestamp_ms=T0_MS + index * spacing_ms)


def published(broker: MemoryBroker, topic: str) -> list[dict[str, object]]:
    return [orjson.loads(value) for value in broker.values(topic)]


def thefts() -> list:  # type: ignore[type-arg]
    return [
        normal_series("EST-01", 720, seed=1, anomalies=[(200, 260, 0, 6.0), (500, 520, 1, 8.0)]),
        normal_series("EST-02", 720, seed=2),
        normal_series("EST-03", 720, seed=3, anomalies=[(300, 420, 4, 7.0)]),
    ]


def test_alerts_match_the_offline_scoring_window_for_window(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    series = thefts()
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, interleave(series, bundle.sensors))
    service = make_service(broker, max_batch=257)
    drain(service)

    live = published(broker, "centinela.alerts")
    reference = offline_alerts(bundle, series)
    assert len(reference) >= 4
    assert alert_ids(live) == alert_ids(reference)
    assert {a["kind"] for a in live} == {"incident"}
    scores = published(broker, "centinela.scores")
    windows = sum(len(s.ts) for s in series) // 5
    assert len(scores) >= windows * 0.9
    assert broker.values("centinela.dlq") == []
    assert broker.committed[0].next_offset == len(broker.log[0])


def test_each_alert_is_keyed_by_station_and_carries_contributions(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, interleave(thefts()[:1], bundle.sensors))
    drain(make_service(broker))
    opened = [
        m for m in broker.published["centinela.alerts"] if orjson.loads(m.value() or b"")["status"] == "open"
    ]
    assert opened
    body = orjson.loads(opened[0].value() or b"")
    assert opened[0].key() == b"EST-01"
    assert body["contributions"][0]["sensor"] == "flow"  # the sensor the theft shifted
    assert body["schema"] == 1


HOSTILE: list[tuple[str, bytes]] = [
    ("not_json", b"this is not json"),
    (
        "wrong_type",
        b'{"station_id": "EST-01", "ts": "2025-01-01T00:00:00Z", "flow": "a lot", '
        b'"pressure": 1, "pump_rpm": 1, "tank_level": 1, "power": 1}',
    ),
    ("not_finite", b'{"station_id": "EST-01", "ts": "2025-01-01T00:00:00Z", "flow": 1e999}'),
    ("not_json", b'{"station_id": "EST-01", "flow": NaN}'),
    ("too_large", b'{"station_id": "EST-01", "pad": "' + b"x" * 70_000 + b'"}'),
    ("missing_field", b'{"station_id": "EST-01", "ts": "2025-01-01T00:00:00Z"}'),
    ("bad_station_id", b'{"station_id": "../../etc/passwd", "ts": "2025-01-01T00:00:00Z"}'),
    ("not_json", bytes(range(256))),
    ("not_object", b"[1, 2, 3]"),
]


def test_hostile_messages_reach_the_dead_letter_topic_and_the_loop_goes_on(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    series = thefts()[:1]
    good = interleave(series, bundle.sensors)
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, good[:300])
    for _reason, raw in HOSTILE:
        broker.append(raw, key=b"EST-01", headers=[("origin", b"fuzz")])
    broker.append(None, key=b"EST-01")
    feed_from = len(broker.log[0])
    for index, (key, value) in enumerate(good[300:]):
        broker.append(value, key=key, timestamp_ms=T0_MS + (feed_from + index) * 10)
    service = make_service(broker)
    drain(service)

    dead = broker.published["centinela.dlq"]
    reasons = [(dict(m.headers() or [])["centinela.reason"] or b"").decode() for m in dead]
    assert reasons == [reason for reason, _raw in HOSTILE] + ["empty"]
    first = dict(dead[0].headers() or [])
    assert dead[0].value() == HOSTILE[0][1]
    assert first["origin"] == b"fuzz"
    assert first["centinela.source.topic"] == TOPIC.encode()
    assert first["centinela.source.partition"] == b"0"
    assert first["centinela.source.offset"] == b"300"
    assert first["centinela.detail"]
    live = published(broker, "centinela.alerts")
    assert alert_ids(live) == alert_ids(offline_alerts(bundle, series))
    assert (
        service.metrics.registry.get_sample_value("centinela_dead_letters_total", {"reason": "not_json"}) == 3
    )


def test_late_and_duplicate_readings_are_counted_not_dead_lettered(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    messages = normal_series("EST-01", 120, seed=4).messages(bundle.sensors)
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, messages[:100])
    broker.append(messages[50][1], key=b"EST-01")  # 50 minutes behind: late
    broker.append(messages[99][1], key=b"EST-01")  # the same slot again: duplicate
    service = make_service(broker)
    drain(service)
    registry = service.metrics.registry
    assert registry.get_sample_value("centinela_readings_total", {"outcome": "late"}) == 1
    assert registry.get_sample_value("centinela_readings_total", {"outcome": "duplicate"}) == 1
    assert registry.get_sample_value("centinela_readings_total", {"outcome": "accepted"}) == 100
    assert "centinela.dlq" not in broker.published


def test_unknown_stations_and_wrong_keys_are_dead_lettered_when_asked(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, normal_series("EST-99", 10, seed=5).messages(bundle.sensors))
    feed(broker, [(b"EST-02", value) for _key, value in normal_series("EST-01", 3).messages(bundle.sensors)])
    drain(make_service(broker, accept_unknown_stations=False))
    reasons = [dict(m.headers() or [])["centinela.reason"] for m in broker.published["centinela.dlq"]]
    assert reasons == [b"unknown_station"] * 10 + [b"key_mismatch"] * 3


def test_a_silent_station_raises_data_gap_on_the_clock(
    bundle: Bundle, make_service: ServiceFactory, clock: ManualClock
) -> None:
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, normal_series("EST-01", 90, seed=6).messages(bundle.sensors))
    service = make_service(broker, idle_timeout_s=120)
    drain(service)
    assert "centinela.alerts" not in broker.published
    for _ in range(40):  # 40 minutes of silence, one check per minute
        clock.advance(60)
        service.step()
    gaps = published(broker, "centinela.alerts")
    assert gaps[0]["kind"] == "data_gap"
    assert gaps[0]["status"] == "open"
    assert gaps[0]["reason"] == "station_silent"
    assert gaps[0]["station_id"] == "EST-01"
    # the station comes back: its next scored window closes the gap
    resumed = normal_series(
        "EST-01", 60, seed=7, start=normal_series("EST-01", 1).ts[0] + timedelta(minutes=140)
    )
    feed(broker, resumed.messages(bundle.sensors))
    drain(service)
    statuses = [(a["kind"], a["status"]) for a in published(broker, "centinela.alerts")]
    assert statuses[-1] == ("data_gap", "close")


def test_restart_rebuilds_windows_and_publishes_nothing_twice(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    series = thefts()
    messages = interleave(series, bundle.sensors)
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, messages, spacing_ms=20_000)  # produce time follows event time: 3 stations, 1/min
    first = make_service(broker, max_batch=100)
    for _ in range(7 * len(messages) // 100 // 10):  # stop at ~70 %, as a crash would
        first.step()
    assert 0 < broker.committed[0].next_offset < len(messages)
    second = make_service(broker, max_batch=100)  # a new process: empty state, same committed offsets
    drain(second)
    live = published(broker, "centinela.alerts")
    assert alert_ids(live) == alert_ids(offline_alerts(bundle, series))
    assert len(live) == len({a["alert_id"] for a in live})
    rebuilt = second.metrics.registry.get_sample_value("centinela_rebuilt_readings_total")
    horizon_messages = second.rebuild_horizon() / timedelta(seconds=20)
    assert rebuilt is not None
    assert horizon_messages - 3 <= rebuilt <= horizon_messages + 3  # re-read by time, not from the start


def test_an_aborted_transaction_is_redone_from_the_committed_offsets(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    series = thefts()
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, interleave(series, bundle.sensors))
    service = make_service(broker, max_batch=300)
    for _ in range(3):
        service.step()
    broker.fail_next_commit = True
    drain(service)
    assert alert_ids(published(broker, "centinela.alerts")) == alert_ids(offline_alerts(bundle, series))
    assert (
        service.metrics.registry.get_sample_value("centinela_transactions_total", {"outcome": "aborted"}) == 1
    )


def test_partitions_keep_their_state_when_the_same_instance_gets_them_back(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    series = thefts()
    broker = MemoryBroker(topic=TOPIC, partitions=2)
    feed(broker, interleave(series, bundle.sensors), partitions=2)
    service = make_service(broker, max_batch=200)
    for _ in range(5):
        service.step()
    broker.reassign()  # a rebalance that hands back the same partitions
    drain(service)
    assert service.metrics.registry.get_sample_value("centinela_rebuilt_readings_total") == 0
    assert alert_ids(published(broker, "centinela.alerts")) == alert_ids(offline_alerts(bundle, series))


def test_per_station_gauges_are_read_at_scrape_time(bundle: Bundle, make_service: ServiceFactory) -> None:
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, interleave(thefts()[:2], bundle.sensors))
    service = make_service(broker)
    drain(service)
    registry = service.metrics.registry
    assert registry.get_sample_value("centinela_threshold", {"station": "EST-01"}) == 1.0
    assert registry.get_sample_value("centinela_score", {"station": "EST-02"}) is not None
    assert registry.get_sample_value("centinela_incident_open", {"station": "EST-02"}) == 0
    newest = registry.get_sample_value("centinela_last_reading_timestamp_seconds", {"station": "EST-01"})
    assert newest == normal_series("EST-01", 720).ts[-1].timestamp()
    assert (
        registry.get_sample_value(
            "centinela_model_info", {"model_version": "test-linear-1", "format_version": "1"}
        )
        == 1
    )
    assert registry.get_sample_value("centinela_windows_scored_total") > 0  # type: ignore[operator]


def test_an_idle_poll_publishes_nothing(bundle: Bundle, make_service: ServiceFactory) -> None:
    broker = MemoryBroker(topic=TOPIC)
    service = make_service(broker)
    assert service.step() == 0
    assert broker.published == {}
    assert broker.committed == {}


def test_settings_bound_the_batch(bundle: Bundle) -> None:
    broker = MemoryBroker(topic=TOPIC)
    feed(broker, normal_series("EST-01", 50).messages(bundle.sensors))
    service = DetectorService(
        settings(max_batch=20),
        broker,
        bundle,
        DetectorMetrics(CollectorRegistry()),
        clock=ManualClock.at_unix(0),
    )
    broker.start(service, 0)
    assert [service.step() for _ in range(4)] == [20, 20, 10, 0]


@pytest.mark.parametrize("update_every_s", [0.0, 900.0])
def test_rebuild_horizon_covers_a_window_and_the_incident_memory(
    bundle: Bundle, update_every_s: float
) -> None:
    service = DetectorService(
        settings(incident={"update_every_s": update_every_s}),
        MemoryBroker(),
        bundle,
        DetectorMetrics(CollectorRegistry()),
    )
    spec = bundle.window_spec
    assert service.rebuild_horizon() >= spec.length + spec.max_fill + spec.allowed_lateness + timedelta(
        seconds=update_every_s
    )


def long_incident_run(
    make_service: ServiceFactory, bundle: Bundle, state_topic: str
) -> list[dict[str, object]]:
    series = [normal_series("EST-01", 600, seed=9, anomalies=[(100, 420, 0, 6.0)])]
    messages = interleave(series, bundle.sensors)
    broker = MemoryBroker(topic=TOPIC, state_topic=state_topic)
    feed(broker, messages, spacing_ms=60_000)  # produce time follows event time
    first = make_service(broker, max_batch=10, topics={"state": state_topic})
    while broker.committed.get(0, Mark(0, 0)).next_offset < 300:  # crash in the middle of the incident
        first.step()
    drain(make_service(broker, max_batch=10, topics={"state": state_topic}))
    return published(broker, "centinela.alerts")


def test_a_state_topic_carries_an_incident_longer_than_the_rebuild_horizon(
    bundle: Bundle, make_service: ServiceFactory
) -> None:
    series = [normal_series("EST-01", 600, seed=9, anomalies=[(100, 420, 0, 6.0)])]
    reference = [(a.alert_id, a.incident_id) for a in offline_alerts(bundle, series)]
    with_state = long_incident_run(make_service, bundle, "centinela.state")
    assert [(a["alert_id"], a["incident_id"]) for a in with_state] == reference
    without = long_incident_run(make_service, bundle, "")
    # Without it the successor re-opens the incident under another id: the limit the topic removes.
    assert {a["incident_id"] for a in without} != {incident for _alert, incident in reference}


def test_an_outage_longer_than_the_limit_stops_the_service(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detector.errors import BrokerError

    broker = MemoryBroker(topic=TOPIC)
    ticks = ManualClock(datetime.now(UTC))
    service = DetectorService(
        settings(broker_outage_limit_s=30),
        broker,
        bundle,
        DetectorMetrics(CollectorRegistry()),
        monotonic=ticks,
    )
    broker.start(service, 0)
    monkeypatch.setattr(broker, "healthy", lambda: False)
    service.step()  # down noticed at 0 s
    ticks.advance(20)
    service.step()  # 20 s: still within the limit
    ticks.advance(20)
    with pytest.raises(BrokerError, match="broker_outage_limit_s=30"):
        service.step()  # 40 s
    assert service.metrics.registry.get_sample_value("centinela_broker_up") == 0


def test_a_reading_stamped_far_ahead_of_the_clock_is_dead_lettered(bundle: Bundle) -> None:
    broker = MemoryBroker(topic=TOPIC)
    series = normal_series("EST-01", 40).messages(bundle.sensors)
    feed(broker, series)
    body = orjson.loads(series[-1][1])
    body["ts"] = "9999-12-31T23:59:00Z"  # a year-9999 clock would otherwise walk the watermark forever
    feed(broker, [(b"EST-01", orjson.dumps(body))])
    service = DetectorService(
        settings(), broker, bundle, DetectorMetrics(CollectorRegistry()), clock=ManualClock(datetime.now(UTC))
    )
    broker.start(service, 0)
    while service.step():
        pass
    letters = broker.published.get(settings().topics.dlq, [])
    assert [dict(m.headers() or [])["centinela.reason"] for m in letters] == [b"future_timestamp"]
    assert all(alert["kind"] != "data_gap" for alert in published(broker, settings().topics.alerts))
