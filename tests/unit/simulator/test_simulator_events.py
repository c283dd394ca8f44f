"""Events: rates and sizes as configured, labels exactly on the spans, faults labelled apart."""

from __future__ import annotations

import numpy as np

from simulator import SimulationConfig
from simulator.event import LABELLED_TYPES
from simulator.events import draw_events
from tests.unit.simulator.simulator_helpers import busy_result


def test_labels_cover_exactly_the_theft_and_leak_spans_on_both_ends_of_the_segment() -> None:
    result = busy_result()
    expected = np.zeros_like(result.label, dtype=bool)
    labelled = [e for e in result.events if e.event_type in LABELLED_TYPES]
    assert any(e.event_type == "theft" for e in labelled) and any(e.event_type == "leak" for e in labelled)
    for event in labelled:
        assert event.segment is not None
        assert event.stations == (event.segment, event.segment + 1)
        expected[event.start : event.end, list(event.stations)] = True
    assert np.array_equal(result.label.astype(bool), expected)


def test_extraction_is_positive_exactly_inside_the_labelled_spans() -> None:
    result = busy_result()
    for event in result.events:
        if event.event_type in LABELLED_TYPES and event.segment is not None:
            inside = result.extraction_m3h[event.start : event.end, event.segment]
            assert (inside > 0).all()
    # And nowhere else: every positive minute belongs to some theft or leak on that segment.
    covered = np.zeros_like(result.extraction_m3h, dtype=bool)
    for event in result.events:
        if event.event_type in LABELLED_TYPES and event.segment is not None:
            covered[event.start : event.end, event.segment] = True
    assert not ((result.extraction_m3h > 0) & ~covered).any()


def test_rows_name_the_most_serious_event_and_sensor_faults_stay_label_zero() -> None:
    result = busy_result()
    frame = result.frame
    faults = frame[frame["event_type"] == "sensor_fault"]
    assert len(faults) > 0
    assert (faults["label"] == 0).all()
    thefts = frame[frame["event_type"].isin(["theft", "leak"])]
    assert (thefts["label"] == 1).all()
    assert (frame.loc[frame["label"] == 1, "event_type"].isin(["theft", "leak"])).all()
    ids = {e.event_id: e for e in result.events}
    sample = thefts.iloc[:: max(1, len(thefts) // 50)]
    for event_id, station in zip(sample["event_id"], sample["station_id"], strict=True):
        assert result.station_ids.index(station) in ids[event_id].stations


def test_dropouts_remove_rows_or_empty_cells_and_stuck_sensors_freeze() -> None:
    result = busy_result()
    kinds = {e.subtype for e in result.events if e.event_type == "sensor_fault"}
    assert kinds == {"stuck", "spike", "drift", "dropout"}
    missing = ~result.present
    for event in result.events:
        if event.event_type != "sensor_fault" or event.station is None:
            continue
        span = slice(event.start, event.end)
        if event.subtype == "dropout" and event.sensor == "*":
            assert missing[span, event.station].all()
        elif event.subtype == "dropout":
            assert np.isnan(result.readings[event.sensor][span, event.station]).all()
        elif event.subtype == "stuck" and not np.isnan(event.magnitude):
            values = result.readings[event.sensor][span, event.station]
            values = values[~np.isnan(values)]
            assert np.ptp(values) == 0 if len(values) else True
    assert result.rows == int(result.present.sum()) < result.present.size


def test_theft_rate_sizes_and_night_preference_follow_the_parameters() -> None:
    config = SimulationConfig(stations=11, days=300, seed=4)
    events = draw_events(config, np.random.default_rng(1))
    thefts = [e for e in events if e.event_type == "theft"]
    segment_months = 10 * 300 / 30
    # Overlapping draws on a segment are dropped, so slightly fewer than the rate asks for.
    assert 0.8 * 2.0 * segment_months < len(thefts) <= 2.0 * segment_months * 1.15
    sizes = np.array([e.magnitude for e in thefts])
    assert sizes.min() >= 0.005 and sizes.max() <= 0.15
    assert 0.15 < np.mean(sizes < 0.01) < 0.30  # log-uniform: about 20 % in the 0.5–1 % band
    durations = np.array([e.end - e.start for e in thefts])
    assert durations.min() >= 10 and durations.max() <= 360
    local = (np.array([e.start for e in thefts]) + config.local_minute_of_day_at_start) % 1440
    night = (local >= 21 * 60) | (local < 5 * 60)
    assert 0.72 < night.mean() < 0.88  # 70 % drawn at night, plus the day draws that land there


def test_quiet_config_has_no_events_and_steady_flows() -> None:
    config = SimulationConfig(stations=3, days=1).quiet()
    assert draw_events(config, np.random.default_rng(0)) == []


def test_events_frame_lists_every_event_with_times_and_volume() -> None:
    result = busy_result()
    frame = result.events_frame()
    assert len(frame) == len(result.events)
    assert frame["event_id"].is_unique
    assert (frame["end"] > frame["start"]).all()
    thefts = frame[frame["event_type"] == "theft"]
    assert (thefts["volume_m3"] > 0).all()
    assert (thefts["label"] == 1).all()
    assert set(frame["event_type"]) >= {"theft", "leak", "sensor_fault", "transient"}
