from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from detector.bundle import ScoreBatch
from detector.decisions import (
    Model,
    Pending,
    decide,
    link_station_alerts,
    link_tap_alerts,
    open_station_incidents,
    scorable,
    taps_by_station,
)
from detector.incidents import Alert, IncidentTracker, SegmentRef
from detector.records import STATION_SILENT, ScoreRecord, encode_score
from detector.windows import ClosedWindow

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SENSORS = ("flow", "pressure")
MODEL = Model(threshold=1.0, model_version="m1", sensors=SENSORS, window_length=timedelta(minutes=30))


def window(minute: int, *, scorable: bool = True) -> ClosedWindow:
    end = T0 + timedelta(minutes=minute)
    if scorable:
        return ClosedWindow(end, np.zeros((30, 2), dtype=np.float32), None)
    return ClosedWindow(end, None, "gap_too_long")


def batch(scores: list[float]) -> ScoreBatch:
    return ScoreBatch(np.asarray(scores), np.tile([[0.75, 0.25]], (len(scores), 1)))


def test_scores_and_gaps_become_alerts_in_window_order() -> None:
    pending = [
        Pending("EST-01", window(30), 1000, False),
        Pending("EST-01", window(35, scorable=False), 2000, False),
        Pending("EST-01", window(40), 3000, False),
        Pending("EST-02", window(30), -1, False, silent=True),
    ]
    assert len(scorable(pending)) == 3
    decided = decide(pending, batch([2.0, 0.1, 0.2]), IncidentTracker(), MODEL, records=True)
    kinds = [[(a.kind, a.status) for a in item.alerts] for item in decided.items]
    assert kinds == [[("incident", "open")], [("data_gap", "open")], [("data_gap", "close")], []]
    assert decided.items[0].alerts[0].contributions[0].sensor == "flow"
    assert decided.scored == 3
    assert decided.skipped == {"gap_too_long": 1}
    assert [item.score for item in decided.items] == [2.0, None, 0.1, 0.2]
    record = ScoreRecord.model_validate_json(decided.items[0].record or b"")
    assert (record.station_id, record.window_end, record.score) == ("EST-01", T0 + timedelta(minutes=30), 2.0)


def test_a_silent_station_gap_says_so() -> None:
    pending = [Pending("EST-01", window(30, scorable=False), -1, False, silent=True)]
    (item,) = decide(pending, None, IncidentTracker(), MODEL).items
    assert item.alerts[0].reason == STATION_SILENT
    assert item.record is None


def test_rebuilt_windows_move_the_tracker_but_count_nothing() -> None:
    tracker = IncidentTracker()
    decided = decide([Pending("EST-01", window(30), 1, True)], batch([5.0]), tracker, MODEL, records=True)
    assert decided.scored == 0
    assert decided.items[0].record is None
    assert decided.items[0].rebuild
    assert tracker.is_open("EST-01")


def test_encode_score_is_the_model_dump() -> None:
    encoded = encode_score("EST-01", T0, 0.5, 1.0, "m1")
    model = ScoreRecord(station_id="EST-01", window_end=T0, score=0.5, threshold=1.0, model_version="m1")
    assert orjson.loads(encoded) == orjson.loads(model.model_dump_json(by_alias=True))
    assert ScoreRecord.model_validate_json(encoded) == model


def tap_alert(status: str = "open") -> Alert:
    return Alert(
        alert_id=f"tap-{status}",
        incident_id="tap-1",
        kind="tap",
        status=status,  # type: ignore[arg-type]
        station_id="EST-01",
        window_start=T0,
        window_end=T0 + timedelta(minutes=10),
        score=80.0,
        threshold=60.0,
        severity="medium",
        contributions=[],
        model_version="m1",
        emitted_at=T0,
        segment=SegmentRef(
            line_id="L1", segment_id="EST-01>EST-02", upstream="EST-01", downstream="EST-02", length_km=40
        ),
    )


def test_station_incidents_at_a_tapped_segment_name_the_tap_and_back() -> None:
    tracker = IncidentTracker()
    pending = [Pending("EST-02", window(30), 1, False), Pending("EST-03", window(30), 1, False)]
    decided = decide(pending, batch([3.0, 3.0]), tracker, MODEL)
    alerts = [alert for item in decided.items for alert in item.alerts]
    linked = link_station_alerts(alerts, taps_by_station([("tap-1", "EST-01", "EST-02")]))
    assert [(a.station_id, a.related) for a in linked] == [("EST-02", ["tap-1"]), ("EST-03", [])]
    incidents = open_station_incidents(tracker, ["EST-01", "EST-02"])
    assert incidents == {"EST-02": alerts[0].incident_id}
    (tap,) = link_tap_alerts([tap_alert()], incidents)
    assert tap.related == [alerts[0].incident_id]
    (closed,) = link_tap_alerts([tap_alert("close")], incidents)
    assert closed.related == []  # a close names nothing new
    assert link_station_alerts(alerts, {}) == alerts


def test_a_station_with_its_own_threshold_is_judged_against_it() -> None:
    model = Model(1.0, "m1", SENSORS, timedelta(minutes=30), station_thresholds={"EST-02": 3.0})
    pending = [Pending("EST-01", window(30), 1, False), Pending("EST-02", window(30), 1, False)]
    decided = decide(pending, batch([2.0, 2.0]), IncidentTracker(), model, records=True)
    assert [[a.kind for a in item.alerts] for item in decided.items] == [["incident"], []]
    record = ScoreRecord.model_validate_json(decided.items[1].record or b"")
    assert record.threshold == 3.0
    assert model.threshold_for("EST-07") == 1.0
