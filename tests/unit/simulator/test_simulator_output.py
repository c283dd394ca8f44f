"""Files: same seed, same bytes; the CSV layouts; the CLI; the plot."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from centinela.cli import app
from detector.errors import ConfigError
from detector.topology import load_topology
from simulator import EVENTS_COLUMNS, READINGS_COLUMNS, SimulationConfig, simulate
from simulator.writer import ORIGINAL_COLUMNS, write_outputs
from tests.unit.simulator.simulator_helpers import busy_config, busy_result

FILES = ("readings.csv", "events.csv", "scenario.json", "topology.toml")


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    config = busy_config()
    for name, seed in (("a", config.seed), ("b", config.seed), ("c", config.seed + 1)):
        write_outputs(simulate(SimulationConfig(**{**config.__dict__, "seed": seed})), tmp_path / name)
    for file in FILES:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    assert (tmp_path / "a" / "readings.csv").read_bytes() != (tmp_path / "c" / "readings.csv").read_bytes()


def test_readings_csv_round_trips_to_the_result(tmp_path: Path) -> None:
    result = busy_result()
    written = write_outputs(result, tmp_path)
    text = written.readings.read_text()
    assert text.splitlines()[0] == ",".join(READINGS_COLUMNS)
    first_stamp = result.stamps[0, 0].astype("datetime64[s]")
    assert text.splitlines()[1].startswith(f"{first_stamp}Z,EST-01,")
    frame = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])
    assert len(frame) == written.rows == result.rows
    expected = result.frame
    assert (frame["station_id"].to_numpy() == expected["station_id"].astype(str).to_numpy()).all()
    for sensor in ("flow", "pressure", "pump_rpm", "tank_level", "power", "suction_pressure", "temperature"):
        quantum = result.config.noise[sensor].quantum
        both = expected[sensor].to_numpy()
        assert np.array_equal(np.isnan(frame[sensor].to_numpy()), np.isnan(both))
        assert np.nanmax(np.abs(frame[sensor].to_numpy() - both)) < quantum / 2 + 1e-9
    assert (frame["label"].to_numpy() == expected["label"].to_numpy()).all()
    assert (frame["event_id"].fillna("").to_numpy() == expected["event_id"].astype(str).to_numpy()).all()
    stamps = pd.to_datetime(frame["timestamp"], utc=True, format="%Y-%m-%dT%H:%M:%SZ")
    assert (stamps == expected["timestamp"]).all()
    assert (stamps.dt.second != 0).mean() > 0.5  # the station clocks are off: stamps leave the minute


def test_events_csv_and_scenario_json_describe_the_run(tmp_path: Path) -> None:
    result = busy_result()
    written = write_outputs(result, tmp_path)
    events = pd.read_csv(written.events, keep_default_na=False)
    assert len(events) == len(result.events)
    assert events["start"].str.endswith("Z").all()
    scenario = json.loads(written.scenario.read_text())
    assert scenario["seed"] == result.config.seed
    assert scenario["config"]["stations"] == 4
    assert scenario["config"]["rates"]["theft_per_segment_month"] == 30.0
    assert scenario["config"]["start"] == "2025-01-01T00:00:00Z"
    assert len(scenario["line"]["segment_km"]) == 4
    assert sum(scenario["events_by_type"].values()) == len(result.events)


def test_original_layout_is_one_station_in_the_seed_columns(tmp_path: Path) -> None:
    result = busy_result()
    write_outputs(result, tmp_path, layout="original", station="EST-03")
    lines = (tmp_path / "readings.csv").read_text().splitlines()
    assert lines[0] == ",".join(ORIGINAL_COLUMNS)
    assert lines[1].startswith("2025-01-01 00:00:00,")
    # One station on the minute, as the seed data set: no clock skew, no topology.
    assert all(line[17:19] == "00" for line in lines[1:])
    assert not (tmp_path / "topology.toml").exists()
    frame = pd.read_csv(tmp_path / "readings.csv")
    assert len(frame) == int(result.present[:, 2].sum())
    assert set(frame["label"].unique()) <= {0.0, 1.0}
    assert frame["label"].sum() == result.label[result.present[:, 2], 2].sum()


@pytest.mark.slow
def test_cli_writes_four_files_a_plot_and_a_summary(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["simulate", "--stations", "3", "--days", "2", "--seed", "5", "--out", str(tmp_path)]
    outcome = runner.invoke(app, [*args, "--theft-rate", "20", "--plot", "--plot-days", "1"])
    assert outcome.exit_code == 0, outcome.output
    for file in (*FILES, "plot_segment.png"):
        assert (tmp_path / file).stat().st_size > 0
    assert "rows written" in outcome.output
    assert "events theft" in outcome.output
    assert (tmp_path / "plot_segment.png").read_bytes()[:4] == b"\x89PNG"
    assert "line pack" in outcome.output


def test_cli_turns_line_pack_and_clock_skew_off(tmp_path: Path) -> None:
    args = ["simulate", "--stations", "2", "--days", "0.1", "--out", str(tmp_path)]
    outcome = CliRunner().invoke(app, [*args, "--no-line-pack", "--clock-skew", "0"])
    assert outcome.exit_code == 0, outcome.output
    config = json.loads((tmp_path / "scenario.json").read_text())["config"]
    assert config["line_pack"] is False
    assert config["clock_skew_s"] == 0.0
    assert pd.read_csv(tmp_path / "readings.csv")["timestamp"].str.endswith(":00Z").all()


def test_cli_declares_the_clock_tolerance_of_the_skew_it_simulated(tmp_path: Path) -> None:
    args = ["simulate", "--stations", "3", "--days", "0.1", "--out", str(tmp_path), "--clock-skew", "120"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    (line,) = load_topology(tmp_path / "topology.toml").lines
    assert line.clock_tolerance_s == 240.0  # two clocks at most 2 x 120 s apart: a lateness of 6 min


@pytest.mark.parametrize(("skew", "tolerance"), [(45.0, 90.0), (0.0, 0.0), (120.0, 240.0), (30.4, 62.0)])
def test_the_simulated_topology_bounds_every_clock_offset(skew: float, tolerance: float) -> None:
    result = simulate(SimulationConfig(stations=4, days=0.5, seed=3, clock_skew_s=skew).quiet())
    (line,) = result.topology().lines
    assert line.clock_tolerance_s == tolerance
    offsets = result.clock_offset_s
    assert (offsets.max(axis=1) - offsets.min(axis=1)).max() <= tolerance


def test_cli_refuses_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = (
        ["--layout", "wide"],
        ["--theft-size", "0.2:0.1"],
        ["--theft-size", "0:0.1"],
        ["--theft-minutes", "0:10"],
        ["--start", "yesterday"],
        ["--clock-skew", "-1"],
        ["--clock-skew", "600"],
    )
    for extra in bad:
        outcome = runner.invoke(app, ["simulate", "--days", "0.1", "--out", str(tmp_path), *extra])
        assert outcome.exit_code != 0


def test_a_run_without_events_writes_a_header_only_events_file(tmp_path: Path) -> None:
    result = simulate(SimulationConfig(stations=1, days=0.2, seed=1).quiet())
    written = write_outputs(result, tmp_path)
    assert written.topology is None  # one station: no segment to declare
    assert written.events.read_text().splitlines() == [",".join(EVENTS_COLUMNS)]
    assert written.rows == 288
    assert json.loads(written.scenario.read_text())["events_by_type"] == {}


def test_topology_toml_declares_the_simulated_line_and_round_trips(tmp_path: Path) -> None:
    result = busy_result()
    written = write_outputs(result, tmp_path)
    assert written.topology == tmp_path / "topology.toml"
    topology = load_topology(written.topology)
    assert topology == result.topology()
    (line,) = topology.lines
    assert [station.id for station in line.station] == list(result.station_ids)
    assert all(station.tank_area == result.config.tank_area for station in line.station)
    # A segment between each pair of neighbours; none to the terminal (no meter at its far end).
    assert [segment.segment_id for segment in topology.segments] == [
        result.segment_name(j) for j in range(len(result.station_ids) - 1)
    ]
    for j, segment in enumerate(topology.segments):
        assert segment.length_km == pytest.approx(result.line.segment_km[j], abs=5e-4)
        assert segment.decl.inner_diameter_m == result.config.pipe_diameter_m
        # The nominal modulus a user would declare, not the simulation's own K_eff (0.87-1.17 GPa).
        assert segment.decl.bulk_modulus_gpa == 1.3
    # The truth an evaluation needs per tap: where (km from upstream) and how much.
    events = pd.read_csv(written.events, keep_default_na=False)
    thefts = events[events["event_type"] == "theft"]
    assert len(thefts) > 0
    lengths = {segment.segment_id: segment.length_km for segment in topology.segments}
    positions = thefts["position"].to_numpy(dtype=np.float64)
    segment_km = np.array([lengths[name] for name in thefts["segment"]])
    assert ((positions * segment_km > 0) & (positions < 1)).all()
    assert (thefts["volume_m3"].to_numpy(dtype=np.float64) > 0).all()


@pytest.mark.parametrize(
    ("knob", "value", "field"),
    [
        ("clock_skew_s", -1.0, "clock_skew_s"),
        ("clock_skew_s", 600.0, "clock_skew_s"),
        ("clock_wander_s", -1.0, "clock_wander_s"),
        ("pipe_wall_m", 0.2, "pipe_wall_m"),
        ("pipe_modulus_gpa", 0.0, "pipe_modulus_gpa"),
    ],
)
def test_bad_line_pack_and_clock_knobs_are_refused_by_name(knob: str, value: float, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SimulationConfig(**{knob: value})  # type: ignore[arg-type]


def test_a_one_station_line_has_no_topology() -> None:
    result = simulate(SimulationConfig(stations=1, days=0.1, seed=1).quiet())
    with pytest.raises(ConfigError, match="two stations"):
        result.topology()
