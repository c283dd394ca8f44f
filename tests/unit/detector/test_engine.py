"""The core step without Kafka: admission, idle, scoring hand-off, linking, state records, line records."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from detector.bundle import Bundle, ScoreBatch, load_bundle
from detector.engine import ALERT, LINE, SCORE, STATE, Engine, EngineSettings, Outputs
from detector.incidents import Alert, SegmentRef, alert_id, incident_id
from detector.line import LineCalibration, SegmentCalibration, SegmentView
from detector.onnx_runtime import onnx_scorers
from detector.readings import ParseFailure, format_ts
from detector.records import encode_line_readings, line_state_key
from detector.stations import Refusal
from detector.testing import LINE_SENSORS
from detector.topology import Topology
from devtools.stand_ins import build_linear_bundle

T0 = datetime(2025, 3, 1, tzinfo=UTC)
T0_S = T0.timestamp()


def wire(station: str, minute: int, sensors: tuple[str, ...], value: float = 10.0) -> bytes:
    ts = format_ts(T0 + timedelta(minutes=minute))
    return orjson.dumps({"station_id": station, "ts": ts, **dict.fromkeys(sensors, value)})


def feed(engine: Engine, station: str, minutes: range, *, partition: int = 0) -> float:
    """One reading a minute, each arriving at its event time; returns the last arrival."""
    arrival = T0_S
    for minute in minutes:
        arrival = T0_S + minute * 60
        raw = wire(station, minute, engine.bundle.sensors)
        assert engine.admit(raw, station.encode(), partition, arrival, int(arrival * 1000)) is None
    return arrival


def scores_for(engine: Engine, score: float) -> ScoreBatch | None:
    work = engine.work()
    if work is None:
        return None
    n, sensors = len(work.station_ids), len(engine.bundle.sensors)
    return ScoreBatch(np.full(n, score), np.tile(np.eye(sensors)[0], (n, 1)))


def run(engine: Engine, now_s: float, score: float = 0.1) -> Outputs:
    return engine.finish(now_s, scores_for(engine, score))


def of(out: Outputs, kind: str) -> list[tuple[bytes, bytes | None, int | None]]:
    return [(r.key, r.value, r.partition) for r in out.records if r.kind == kind]


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    folder = build_linear_bundle(tmp_path / "b", stations=("EST-01", "EST-02"), threshold=1.0)
    return load_bundle(folder, reconstructor_factory=onnx_scorers(threads=1))


# -- admission ----------------------------------------------------------------------------------
def test_refusals_say_why_and_accepted_readings_are_counted(bundle: Bundle) -> None:
    engine = Engine(bundle, EngineSettings(refuse_unknown_stations=True))
    sensors, now = bundle.sensors, T0_S
    assert engine.admit(None, b"EST-01", 0, now, 1) == Refusal("empty", "no value (tombstone)")
    failure = engine.admit(b"{oops", b"EST-01", 0, now, 1)
    assert isinstance(failure, ParseFailure) and failure.reason == "not_json"
    unknown = engine.admit(wire("EST-77", 0, sensors), b"EST-77", 0, now, 1)
    assert isinstance(unknown, Refusal) and unknown.reason == "unknown_station"
    forged = engine.admit(wire("EST-01", 0, sensors), b"EST-02", 0, now, 1)
    assert isinstance(forged, Refusal) and forged.reason == "key_mismatch"
    ahead = engine.admit(wire("EST-01", 60 * 48, sensors), b"EST-01", 0, now, 1)
    assert isinstance(ahead, Refusal) and ahead.reason == "future_timestamp"
    assert engine.admit(wire("EST-01", 0, sensors), b"EST-01", 0, now, 1) is None
    assert engine.admit(wire("EST-01", 0, sensors), b"EST-01", 0, now, 1) is None  # a duplicate
    out = engine.finish(now, None)
    assert out.outcomes == {"accepted": 1, "late": 0, "duplicate": 1}
    assert out.records == []
    assert len(engine.stations) == 1


def test_closed_windows_are_the_work_and_their_scores_become_records(bundle: Bundle) -> None:
    engine = Engine(bundle)
    last = feed(engine, "EST-01", range(60))
    work = engine.work()
    assert work is not None
    assert work.windows.shape[1:] == (30, len(bundle.sensors))
    assert set(work.station_ids) == {"EST-01"}
    with pytest.raises(ValueError, match=f"needs {len(work.station_ids)} scores"):
        engine.finish(last, None)
    engine2 = Engine(bundle)
    feed(engine2, "EST-01", range(60))
    out = run(engine2, last, score=0.1)
    scores = of(out, SCORE)
    assert len(scores) == out.scored == len(work.station_ids)
    assert {key for key, _value, _p in scores} == {b"EST-01"}
    assert out.alerts == [] and of(out, ALERT) == []
    assert len(out.latencies_ms) == out.scored  # each decided window's reading had a produce time
    view = next(engine2.station_views())
    assert (view.score, view.threshold) == (0.1, 1.0)


def test_score_records_are_left_out_when_not_asked(bundle: Bundle) -> None:
    engine = Engine(bundle, EngineSettings(score_records=False))
    last = feed(engine, "EST-01", range(60))
    out = run(engine, last)
    assert out.scored > 0 and of(out, SCORE) == []


# -- the idle clock -----------------------------------------------------------------------------
def test_only_a_station_silent_past_the_timeout_has_its_windows_closed(bundle: Bundle) -> None:
    engine = Engine(bundle, EngineSettings(idle_timeout_s=120))
    feed(engine, "EST-01", range(40))
    last = feed(engine, "EST-02", range(40))
    run(engine, last)
    heard = last + 3600
    assert engine.admit(wire("EST-02", 40, bundle.sensors), b"EST-02", 0, heard, 1) is None
    assert engine.close_idle(heard + 60) == 0  # EST-02 spoke a minute ago; EST-01 an hour ago
    out = run(engine, heard + 60)
    gaps = [a for a in out.alerts if a.kind == "data_gap"]
    assert {a.station_id for a in gaps} == {"EST-01"}
    assert gaps[0].reason == "station_silent"
    assert engine.work() is None


def test_the_idle_rule_is_checked_at_most_once_a_second(bundle: Bundle) -> None:
    engine = Engine(bundle, EngineSettings(idle_timeout_s=3600))
    last = feed(engine, "EST-01", range(40))
    run(engine, last)
    engine.close_idle(last + 3599.9)  # due; not silent long enough yet
    engine.close_idle(last + 3600.4)  # silent long enough, but the next check is due 1 s after the last
    assert engine.work() is None and run(engine, last + 3600.4).alerts == []
    engine.close_idle(last + 3600.9)
    assert [a.reason for a in run(engine, last + 3600.9).alerts] == ["station_silent"]


def test_a_gap_longer_than_the_limit_is_skipped_and_counted(bundle: Bundle) -> None:
    engine = Engine(bundle, EngineSettings(max_gap_windows_s=3600))
    feed(engine, "EST-01", range(40))
    later = feed(engine, "EST-01", range(100, 101))  # an hour later: within the limit
    assert engine.close_idle(later) == 0
    later = feed(engine, "EST-01", range(100 + 24 * 60, 101 + 24 * 60))  # a day later
    skipped = engine.close_idle(later + 1)
    assert 24 * 12 - 12 - 12 <= skipped <= 24 * 12 - 12  # a day of 5-minute windows, less 12 cut
    assert engine.close_idle(later + 2) == 0  # counted once


# -- linking, with a scripted line monitor ----------------------------------------------------------
def topology() -> Topology:
    return Topology.from_dict(
        {
            "format": 1,
            "line": [
                {
                    "id": "L1",
                    "station": [
                        {"id": "EST-01", "tank_area_m2": 100.0},
                        {"id": "EST-02", "tank_area_m2": 100.0},
                    ],
                    "segment": [
                        {
                            "upstream": "EST-01",
                            "downstream": "EST-02",
                            "length_km": 40.0,
                            "inner_diameter_m": 0.3,
                        }
                    ],
                }
            ],
        }
    )


class TapOnFirstRow:
    """Opens a tap on the line's segment at the first reading it is fed, and never closes it."""

    def __init__(
        self, topo: Topology, _calibration: LineCalibration, version: str, clock: Callable[[], datetime]
    ) -> None:
        self.segment = topo.segments[0]
        self.version, self.clock = version, clock
        self.fed: list[tuple[str, float]] = []
        self.incident: str | None = None
        self.due: list[Alert] = []

    def add_row(
        self, station_id: str, seconds: float, fields: tuple[str, ...], values: tuple[float, ...]
    ) -> bool:
        self.fed.append((station_id, seconds))
        if self.incident is None:
            ts = datetime.fromtimestamp(seconds, UTC)
            up, down = self.segment.upstream.id, self.segment.downstream.id
            self.incident = incident_id(up, "tap", ts, self.version)
            self.due.append(
                Alert(
                    alert_id=alert_id(up, "tap", "open", ts, self.version),
                    incident_id=self.incident,
                    kind="tap",
                    status="open",
                    station_id=up,
                    window_start=ts,
                    window_end=ts,
                    score=1.0,
                    threshold=1.0,
                    severity="low",
                    contributions=[],
                    model_version=self.version,
                    emitted_at=self.clock(),
                    segment=SegmentRef(
                        line_id="L1",
                        segment_id=self.segment.segment_id,
                        upstream=up,
                        downstream=down,
                        length_km=40.0,
                    ),
                )
            )
        return True

    def advance(self) -> list[Alert]:
        due, self.due = self.due, []
        return due

    def open_incidents(self) -> int:
        return int(self.incident is not None)

    def open_taps(self) -> Iterator[tuple[str, str, str]]:
        if self.incident is not None:
            yield self.incident, self.segment.upstream.id, self.segment.downstream.id

    def views(self) -> Iterator[SegmentView]:
        return iter(())

    def snapshot(self) -> dict[str, Any]:
        return {"incident": self.incident}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        self.incident = snapshot["incident"]


@pytest.fixture
def line_bundle(tmp_path: Path) -> Bundle:
    topo = topology()
    calibration = LineCalibration({s.segment_id: SegmentCalibration(s.segment_id) for s in topo.segments})
    folder = build_linear_bundle(
        tmp_path / "line", sensors=LINE_SENSORS, stations=("EST-01", "EST-02"), line=(topo, calibration)
    )
    return load_bundle(folder, reconstructor_factory=onnx_scorers(threads=1))


def line_engine(bundle: Bundle, **settings: Any) -> Engine:
    return Engine(bundle, EngineSettings(**settings), monitor_factory=TapOnFirstRow)  # type: ignore[arg-type]


def test_accepted_line_readings_are_forwarded_one_record_per_line(line_bundle: Bundle) -> None:
    engine = line_engine(line_bundle)
    feed(engine, "EST-01", range(3))
    last = feed(engine, "EST-02", range(2), partition=1)
    out = run(engine, last)
    ((key, value, partition),) = of(out, LINE)
    assert key == b"L1" and partition is None
    body = orjson.loads(value or b"")
    assert [row[0] for row in body["r"]] == ["EST-01"] * 3 + ["EST-02"] * 2
    assert body["f"] == sorted(line_bundle.topology.required_sensors())  # type: ignore[union-attr]


def test_a_tap_and_a_station_incident_at_its_end_list_each_other(line_bundle: Bundle) -> None:
    engine = line_engine(line_bundle)
    feed(engine, "EST-01", range(60))
    last = feed(engine, "EST-02", range(60), partition=1)
    first = run(engine, last, score=5.0)  # EST-01 and EST-02 open incidents; no tap yet
    opened = {a.station_id: a for a in first.alerts if a.kind == "incident" and a.status == "open"}
    assert set(opened) == {"EST-01", "EST-02"} and all(not a.related for a in opened.values())
    # The line records come back from the line topic: the monitor opens a tap on EST-01>EST-02.
    for key, value, _partition in of(first, LINE):
        assert engine.add_line_record(key, value, 3, last) is None
    second = engine.finish(last, None)
    (tap,) = [a for a in second.alerts if a.kind == "tap"]
    assert set(tap.related) == {opened["EST-01"].incident_id, opened["EST-02"].incident_id}
    assert (ALERT, b"EST-01") in {(r.kind, r.key) for r in second.records}
    # Later station alerts of those incidents name the tap.
    feed(engine, "EST-01", range(60, 80))
    third = run(engine, last + 1200, score=5.0)
    updates = [a for a in third.alerts if a.kind == "incident" and a.status != "close"]
    assert updates and all(a.related == [tap.incident_id] for a in updates)


def test_line_records_that_are_not_ours_are_refused_with_the_reason(line_bundle: Bundle) -> None:
    engine = line_engine(line_bundle)
    good = encode_line_readings(("flow",), [("EST-01", T0_S, (1.0,))])
    assert engine.add_line_record(None, good, 0, T0_S) == "no key or value"
    assert engine.add_line_record(b"L1", None, 0, T0_S) == "no key or value"
    assert "not in the bundle's topology" in (engine.add_line_record(b"L9", good, 0, T0_S) or "")
    assert "not a line record" in (engine.add_line_record(b"L1", b"\x00garbage", 0, T0_S) or "")
    assert engine.add_line_record(b"\xff\xfe", good, 0, T0_S)  # a key that is not UTF-8
    no_line = Engine(
        load_bundle(
            build_linear_bundle(line_bundle.path.parent / "plain"),
            reconstructor_factory=onnx_scorers(threads=1),
        )
    )
    assert no_line.add_line_record(b"L1", good, 0, T0_S) == "no key or value"
    assert engine.finish(T0_S, None).line_readings == 0  # nothing refused reached the monitor
    assert engine.add_line_record(b"L1", good, 0, T0_S) is None


# -- state records ------------------------------------------------------------------------------
def test_state_records_are_written_when_the_state_changes_and_only_then(bundle: Bundle) -> None:
    engine = Engine(bundle, EngineSettings(state_records=True))
    last = feed(engine, "EST-02", range(60), partition=3)
    assert of(run(engine, last, score=0.1), STATE) == []  # normal stays normal: nothing to carry
    feed(engine, "EST-02", range(60, 70), partition=3)
    opened = run(engine, last + 600, score=5.0)
    ((key, value, partition),) = of(opened, STATE)
    assert (key, partition) == (b"EST-02", 3)  # keyed and partitioned as the station's readings
    assert orjson.loads(value or b"")["incident"] is not None
    statuses: list[str] = []
    tombstones = 0
    for step in range(1, 12):  # normal windows: the incident closes, one tombstone, then nothing
        feed(engine, "EST-02", range(60 + 10 * step, 70 + 10 * step), partition=3)
        out = run(engine, last + 600 * (step + 1), score=0.1)
        statuses += [a.status for a in out.alerts]
        tombstones += sum(1 for _k, v, _p in of(out, STATE) if v is None)
    assert "close" in statuses
    assert tombstones == 1


def test_restored_state_is_not_written_again_unchanged(bundle: Bundle) -> None:
    first = Engine(bundle, EngineSettings(state_records=True))
    last = feed(first, "EST-01", range(60))
    ((_key, value, _p),) = of(run(first, last, score=5.0), STATE)
    assert value is not None
    successor = Engine(bundle, EngineSettings(state_records=True))
    successor.restore({"EST-01": value, "EST-02": b"not json"}, {}, last)
    assert successor.tracker.is_open("EST-01") and not successor.tracker.is_open("EST-02")
    # Rebuilt readings are not decided again: the restored state already holds their decisions.
    for minute in range(60):
        raw = wire("EST-01", minute, bundle.sensors)
        successor.rebuild(raw, b"EST-01", 0, last, int((T0_S + minute * 60) * 1000))
    assert successor.work() is None
    assert successor.finish(last, None).records == []


def test_rebuilt_windows_move_the_state_and_publish_nothing(bundle: Bundle) -> None:
    engine = Engine(bundle)
    for minute in range(60):
        raw = wire("EST-01", minute, bundle.sensors)
        engine.rebuild(raw, b"EST-01", 0, T0_S + 3600, int((T0_S + minute * 60) * 1000))
    engine.rebuild(wire("EST-09", 0, bundle.sensors), b"EST-01", 0, T0_S, 1)  # refused: skipped
    out = run(engine, T0_S + 3600, score=5.0)
    assert out.records == [] and out.alerts == [] and out.scored == 0
    assert engine.tracker.is_open("EST-01")
    assert out.outcomes["accepted"] == 0  # rebuilt readings are not counted again


def test_a_line_s_state_is_written_on_its_partition_when_it_moved(line_bundle: Bundle) -> None:
    engine = line_engine(line_bundle, state_records=True)
    good = encode_line_readings(("flow",), [("EST-01", T0_S, (1.0,)), ("EST-02", T0_S, (1.0,))])
    assert engine.add_line_record(b"L1", good, 2, T0_S) is None
    ((key, value, partition),) = of(engine.finish(T0_S, None), STATE)
    assert (key, partition) == (line_state_key("L1").encode(), 2)
    assert orjson.loads(value or b"")["monitor"]["incident"] is not None
    assert of(engine.finish(T0_S + 1, None), STATE) == []  # nothing moved
    assert engine.add_line_record(b"L1", good, 2, T0_S + 2) is None  # the same readings again:
    assert of(engine.finish(T0_S + 2, None), STATE) == []  # the line moved, its state did not
    engine.drop((), {2})
    assert engine.open_incidents() == 0


# -- after the commit, and ownership -------------------------------------------------------------
def test_committed_alerts_show_their_contributions_and_dropped_stations_go(bundle: Bundle) -> None:
    engine = Engine(bundle)
    feed(engine, "EST-01", range(60), partition=0)
    last = feed(engine, "EST-02", range(60), partition=1)
    out = run(engine, last, score=5.0)
    assert all(view.contributions == () for view in engine.station_views())
    engine.committed(out)
    views = {view.station_id: view for view in engine.station_views()}
    assert views["EST-01"].contributions[0][0] == bundle.sensors[0]
    assert engine.open_incidents() == 2
    engine.drop({1})
    assert [view.station_id for view in engine.station_views()] == ["EST-01"]
    assert engine.open_incidents() == 1
