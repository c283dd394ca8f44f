from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.clock import ManualClock
from detector.errors import ConfigError, DataError
from detector.incidents import Alert, IncidentPolicy, IncidentTracker, WindowVerdict, alert_id
from tests.property_depth import examples

T0 = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)
NOW = datetime(2030, 1, 1, tzinfo=UTC)
SHARES = {"flow": 0.1, "pressure": 0.6, "power": 0.3}


def window(station: str, end: datetime, score: float | None = None, threshold: float = 1.0) -> WindowVerdict:
    """The 30-minute window ending at ``end``, by model v1 (scored when ``score`` is given)."""
    shares = {} if score is None else SHARES
    return WindowVerdict(station, end - timedelta(minutes=30), end, threshold, "v1", score, shares)


def feed(
    tracker: IncidentTracker, scores: list[float], station: str = "EST-01", start: int = 0
) -> list[Alert]:
    alerts: list[Alert] = []
    for i, score in enumerate(scores, start=start):
        end = T0 + i * STEP
        alerts += tracker.observe(window(station, end, score))
    return alerts


def tracker(**policy: object) -> IncidentTracker:
    return IncidentTracker(IncidentPolicy(**policy), clock=ManualClock(NOW))  # type: ignore[arg-type]


def test_one_window_above_opens_and_two_below_hysteresis_close() -> None:
    alerts = feed(tracker(), [0.5, 1.2, 0.9, 0.7, 0.7, 0.5])
    assert [(a.status, a.window_end) for a in alerts] == [("open", T0 + STEP), ("close", T0 + 4 * STEP)]
    opening, closing = alerts
    assert opening.incident_id == closing.incident_id
    assert opening.kind == "incident" and opening.severity == "low"
    assert opening.score == 1.2 and opening.threshold == 1.0
    assert [c.sensor for c in opening.contributions] == ["pressure", "power", "flow"]
    assert opening.emitted_at == NOW
    assert opening.window_start == opening.window_end - timedelta(minutes=30)


def test_scores_between_hysteresis_and_threshold_keep_it_open() -> None:
    alerts = feed(tracker(), [1.5, 0.85, 0.85, 0.85, 0.7, 0.85, 0.7, 0.7])
    assert [a.status for a in alerts] == ["open", "close"]
    assert alerts[1].window_end == T0 + 7 * STEP  # the 0.85 at step 5 reset the count


def test_k_of_n_needs_k_crossings_among_the_last_n() -> None:
    policy = tracker(k=2, n=3)
    assert feed(policy, [1.5, 0.1, 0.1, 1.5, 0.1, 0.1]) == []
    alerts = feed(policy, [1.5, 0.1, 1.5], start=6)
    assert [(a.status, a.window_end) for a in alerts] == [("open", T0 + 8 * STEP)]


def test_updates_are_throttled_in_event_time() -> None:
    alerts = feed(tracker(update_every=timedelta(minutes=15)), [2.0] * 8)
    assert [a.status for a in alerts] == ["open", "update", "update"]
    assert [a.window_end for a in alerts] == [T0, T0 + 3 * STEP, T0 + 6 * STEP]


def test_severity_bands_and_peak_on_close() -> None:
    policy = IncidentPolicy()
    assert [policy.severity(s, 1.0) for s in (0.5, 1.0, 1.49, 1.5, 3.0, 10)] == [
        "none", "low", "low", "medium", "high", "high",
    ]  # fmt: skip
    alerts = feed(tracker(update_every=timedelta(0)), [1.1, 3.5, 0.1, 0.1])
    assert [(a.status, a.severity) for a in alerts] == [
        ("open", "low"),
        ("update", "high"),
        ("close", "high"),
    ]


def test_ids_are_deterministic_and_distinct() -> None:
    first = feed(tracker(), [2.0, 0.1, 0.1, 2.0])
    second = feed(tracker(), [2.0, 0.1, 0.1, 2.0])
    assert [a.alert_id for a in first] == [a.alert_id for a in second]
    assert len({a.alert_id for a in first}) == 3
    assert first[0].incident_id != first[2].incident_id
    assert first[0].alert_id == alert_id("EST-01", "incident", "open", T0, "v1")
    assert alert_id("EST-01", "incident", "open", T0, "v2") != first[0].alert_id


def test_stations_are_independent() -> None:
    state = tracker()
    feed(state, [2.0], station="A")
    assert feed(state, [0.1, 0.1], station="B") == []
    assert state.is_open("A") and not state.is_open("B")
    assert state.open_incidents() == 1


def test_a_gap_opens_once_whatever_its_length_and_closes_when_data_resumes() -> None:
    state = tracker(update_every=timedelta(minutes=10))
    alerts = []
    for i in range(500):
        end = T0 + i * STEP
        alerts += state.gap(window("A", end), "insufficient_data")
    assert [(a.kind, a.status) for a in alerts] == [("data_gap", "open")]
    assert alerts[0].reason == "insufficient_data" and alerts[0].score is None
    assert state.has_gap("A")
    resumed = feed(state, [0.2], station="A", start=500)
    assert [(a.kind, a.status) for a in resumed] == [("data_gap", "close")]
    assert resumed[0].incident_id == alerts[0].incident_id
    assert not state.has_gap("A")


def test_a_gap_does_not_close_an_incident() -> None:
    state = tracker()
    feed(state, [2.0])
    end = T0 + STEP
    state.gap(window("EST-01", end, threshold=0.0), "gap_too_long")
    assert state.is_open("EST-01")
    alerts = feed(state, [0.1, 0.1], start=2)
    assert [(a.kind, a.status) for a in alerts] == [("data_gap", "close"), ("incident", "close")]


def test_snapshot_restore_continues_exactly() -> None:
    scores = [0.2, 1.5, 0.1, 1.7, 1.9, 0.5, 0.1, 0.1, 1.6, 0.3]
    reference = feed(tracker(k=2, n=3), scores)
    first = tracker(k=2, n=3)
    before = feed(first, scores[:4])
    first.gap(WindowVerdict("other", T0, T0 + STEP, 0.0, "v1"), "insufficient_data")
    snapshot = json.loads(json.dumps(first.snapshot()))  # must survive JSON
    second = tracker(k=2, n=3)
    second.restore(snapshot)
    after = feed(second, scores[4:], start=4)
    assert [a.alert_id for a in before + after] == [a.alert_id for a in reference]
    assert second.has_gap("other")


def test_idle_stations_hold_no_state() -> None:
    state = tracker()
    feed(state, [0.1] * 10, station="quiet")
    assert state.snapshot()["stations"] == {}


def test_bad_snapshots_and_policies_are_refused() -> None:
    with pytest.raises(DataError):
        tracker().restore({"version": 99, "stations": {}})
    with pytest.raises(DataError):
        tracker().restore({"version": 1, "stations": {"A": {"recent": 0, "incident": {"x": 1}}}})
    for bad in (
        {"k": 3, "n": 2},
        {"hysteresis": 0.0},
        {"close_after": 0},
        {"severity_bands": (2.0, 1.0, 3.0)},
    ):
        with pytest.raises(ConfigError):
            IncidentPolicy(**bad)  # type: ignore[arg-type]


def test_alert_wire_form() -> None:
    (alert,) = feed(tracker(), [2.0])
    body = json.loads(alert.to_json_bytes())
    assert body["schema"] == 1
    assert body["window_end"] == "2025-01-01T00:00:00Z"
    assert body["contributions"][0] == {"sensor": "pressure", "share": 0.6}
    assert Alert.model_validate_json(alert.to_json_bytes()) == alert


def test_a_non_finite_score_is_a_data_gap_not_health() -> None:
    state = tracker()
    alerts = feed(state, [float("nan")])
    assert [(a.kind, a.status, a.reason) for a in alerts] == [("data_gap", "open", "score_not_finite")]
    assert not state.is_open("EST-01")
    assert json.loads(alerts[0].to_json_bytes())["score"] is None


def test_observe_refuses_an_unscored_window_naming_the_station() -> None:
    with pytest.raises(ValueError, match=r"'EST-07'.*gap\(\)"):
        tracker().observe(window("EST-07", T0))


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(st.one_of(st.floats(min_value=0.0, max_value=5.0), st.none()), max_size=60),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=0, max_value=2),
    st.integers(min_value=1, max_value=3),
)
def test_alert_streams_are_well_formed(
    scores: list[float | None], k: int, extra: int, close_after: int
) -> None:
    """open → update* → close per incident, gaps likewise, unique alert ids, event time only."""
    state = tracker(k=k, n=k + extra, close_after=close_after, update_every=timedelta(minutes=10))
    alerts: list[Alert] = []
    for i, score in enumerate(scores):
        end = T0 + i * STEP
        if score is None:
            alerts += state.gap(window("A", end), "insufficient_data")
        else:
            alerts += state.observe(window("A", end, score))
    assert len({a.alert_id for a in alerts}) == len(alerts)
    for kind in ("incident", "data_gap"):
        open_id: str | None = None
        last_report: datetime | None = None
        for alert in (a for a in alerts if a.kind == kind):
            if alert.status == "open":
                assert open_id is None
                open_id, last_report = alert.incident_id, alert.window_end
            else:
                assert alert.incident_id == open_id
                if alert.status == "update":
                    assert last_report is not None and alert.window_end - last_report >= timedelta(minutes=10)
                    last_report = alert.window_end
                else:
                    open_id = None
        assert (open_id is not None) == (state.is_open("A") if kind == "incident" else state.has_gap("A"))
    for alert in alerts:
        if alert.kind == "incident" and alert.status != "close":
            assert alert.score is not None and alert.score >= 1.0
