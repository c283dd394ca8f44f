"""Station clocks: skewed stamps, what they mean, and that the project's readers take them."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from replay.csv_source import CsvSource, SourceOptions
from simulator import SENSORS, SimulationConfig, SimulationResult, simulate
from simulator.clock import as_read, draw_offsets, snap_to_minutes
from simulator.writer import write_outputs
from trainer.data import load_csv


@cache
def skewed() -> SimulationResult:
    return simulate(SimulationConfig(stations=4, days=2, seed=21))


def test_offsets_are_whole_seconds_within_the_skew_and_wander_slowly() -> None:
    offsets = draw_offsets(np.random.default_rng(1), 20_000, 8, 45.0, 3.0)
    assert offsets.dtype == np.int32
    assert np.abs(offsets).max() <= 45
    assert np.ptp(offsets.mean(axis=0)) > 30  # stations differ by tens of seconds
    spread = np.ptp(offsets, axis=0)
    assert (spread >= 3).all() and (spread < 30).all()  # the wander moves each clock a few seconds
    assert np.abs(np.diff(offsets, axis=0)).max() <= 2  # well under a minute per minute
    assert not draw_offsets(np.random.default_rng(1), 100, 3, 0.0, 3.0).any()


def test_a_stamp_is_the_true_minute_plus_the_station_offset() -> None:
    result = skewed()
    expected = result.times[:, None] + result.clock_offset_s.astype("timedelta64[s]")
    assert (result.stamps == expected).all()
    frame = result.frame
    written = pd.DatetimeIndex(frame.loc[frame["station_id"] == "EST-02", "timestamp"]).tz_convert(None)
    assert (written.to_numpy() == result.stamps[result.present[:, 1], 1]).all()
    # Each station's stamps increase strictly: a reader may refuse a station's clock going back.
    assert (np.diff(result.stamps, axis=0) > np.timedelta64(0, "s")).all()
    # Labels and events stay in true time: a row keeps the label of the minute it was sampled in.
    assert (frame["label"].to_numpy() == result.label.reshape(-1)[result.present.reshape(-1)]).all()


def test_no_skew_writes_every_stamp_on_the_minute(tmp_path: Path) -> None:
    config = dataclasses.replace(SimulationConfig(stations=3, days=0.2, seed=2), clock_skew_s=0.0)
    written = write_outputs(simulate(config), tmp_path)
    stamps = pd.read_csv(written.readings)["timestamp"]
    assert stamps.str.endswith(":00Z").all()


def test_a_reader_snapping_to_the_minute_moves_a_step_by_the_clock() -> None:
    step = np.zeros((10, 3))
    step[5:] = 1.0
    offsets = np.array([[0, 40, -40]] * 10, dtype=np.int32)  # on time, 40 s fast, 40 s slow
    read = as_read(step, offsets)
    assert read[:, 0].tolist() == step[:, 0].tolist()
    assert np.flatnonzero(read[:, 1] == 1)[0] == 6  # stamped 40 s late: filed under the next minute
    assert np.flatnonzero(read[:, 2] == 1)[0] == 4  # stamped 40 s early: the minute before
    assert np.isnan(read[0, 1])  # nothing was stamped in the first minute of the fast clock
    assert read[9, 2] == 1.0  # the slow clock's last minute holds its last value
    # A clock crossing half a minute files two samples under one minute: the first wins, then a gap.
    crossing = np.array([[29], [31], [31], [29], [29]], dtype=np.int32)
    assert snap_to_minutes(crossing)[:, 0].tolist() == [0, 2, 3, 3, 4]
    assert as_read(np.arange(5.0)[:, None], crossing)[:, 0].tolist() == [0.0, 0.0, 1.0, 2.0, 4.0]


def test_skew_moves_the_stamped_balance_but_not_the_true_one() -> None:
    result = skewed()
    true_minutes = result.segment_imbalance(0, truth=True, line_pack=True)
    stamped = result.segment_imbalance(0, truth=True, line_pack=True, stamped=True)
    assert np.allclose(true_minutes[1:], result.extraction_m3h[1:, 0], atol=1e-9)
    assert np.nanmax(np.abs(stamped - true_minutes)) > 1.0


def test_trainer_and_replay_readers_take_the_skewed_csv(tmp_path: Path) -> None:
    result = skewed()
    written = write_outputs(result, tmp_path)
    dataset = load_csv(written.readings, sensors=list(SENSORS))
    series = dataset.stations["EST-03"]
    assert (series.ts == result.stamps[result.present[:, 2], 2]).all()
    source = CsvSource(written.readings, SourceOptions(sensors=tuple(SENSORS)))
    stamps = np.concatenate([block.rows.ts_ns for block in source.blocks()])
    assert len(stamps) == result.rows
    assert (stamps == result.stamps.reshape(-1)[result.present.reshape(-1)].astype(np.int64)).all()
