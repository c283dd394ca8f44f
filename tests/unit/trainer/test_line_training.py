"""``centinela train --topology``: the topology is checked against the history, every segment is
calibrated on the rows before the test split (labelled rows excluded), and the bundle, the report
and the model card carry the line."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from detector.errors import ConfigError, DataError
from detector.line.calibration import LineCalibration, SegmentCalibration
from detector.topology import Topology
from trainer.data import load_csv
from trainer.line import calibration_frame, check_topology_against_data, segment_balance, train_line
from trainer.pipeline import TrainOptions
from trainer.split import chronological_bounds

LINE_SENSORS = ("flow", "pressure", "tank_level", "suction_pressure")
STATIONS = ("EST-01", "EST-02", "EST-03")


def topology_dict(stations: tuple[str, ...] = STATIONS, tank: float | str = 250.0) -> dict[str, Any]:
    return {
        "format": 1,
        "line": [
            {
                "id": "L1",
                "station": [{"id": s, "tank_area_m2": tank} for s in stations],
                "segment": [
                    {
                        "upstream": up,
                        "downstream": down,
                        "length_km": 40.0 + 10 * i,
                        "inner_diameter_m": 0.3048,
                    }
                    for i, (up, down) in enumerate(itertools.pairwise(stations))
                ],
            }
        ],
    }


def line_csv(path: Path, minutes: int = 200, labelled: tuple[int, ...] = (50, 51, 120)) -> Path:
    """Three stations, one-minute rows; flow 500 in, the downstream tank rising 1 mm/min at EST-02."""
    rows = []
    start = np.datetime64("2025-01-01T00:00")
    for station in STATIONS:
        for i in range(minutes):
            ts = str(start + np.timedelta64(i, "m")) + ":00Z"
            level = 15.0 + (0.001 * i if station == "EST-02" else 0.0)
            flow = 500.0 - (15.0 if station == "EST-02" else 0.0)  # 250 m2 × 0.06 m/h = 15 m3/h into the tank
            label = int(station == "EST-01" and i in labelled)
            rows.append(f"{station},{ts},{flow},{70.0},{level:.4f},{1.3},{label}")
    path.write_text("station_id,timestamp," + ",".join(LINE_SENSORS) + ",label\n" + "\n".join(rows) + "\n")
    return path


# -- refusals, before any training -----------------------------------------------------------------
def test_a_topology_station_without_rows_is_refused_by_name(tmp_path: Path) -> None:
    dataset = load_csv(line_csv(tmp_path / "h.csv"))
    topology = Topology.from_dict(topology_dict((*STATIONS, "EST-09")))
    with pytest.raises(DataError, match=r"EST-09 of the topology have no rows"):
        check_topology_against_data(topology, dataset, "topo.toml")


def test_a_field_the_balance_reads_must_be_a_sensor_column(tmp_path: Path) -> None:
    dataset = load_csv(line_csv(tmp_path / "h.csv"), sensors=("flow", "pressure", "tank_level"))
    topology = Topology.from_dict(topology_dict())
    with pytest.raises(
        DataError, match=r"topo.toml: field\(s\) suction_pressure used by the segment balance"
    ):
        check_topology_against_data(topology, dataset, "topo.toml")


def test_a_bad_topology_file_stops_the_run_before_the_data_is_read(tmp_path: Path) -> None:
    from trainer.pipeline import run_training

    bad = tmp_path / "topology.toml"
    bad.write_text('format = 1\n[[line]]\nid = "L1"\n[[line.station]]\nid = "EST-01"\n')
    with pytest.raises(
        ConfigError, match=r"topology\.toml: line\.0\.station\.0\.tank_area_m2: Field required"
    ):
        run_training(TrainOptions(data=tmp_path / "no-such.csv", topology=bad))


@pytest.mark.parametrize("budget", [0.0, -1.0, math.nan])
def test_the_segment_budget_must_be_positive(tmp_path: Path, budget: float) -> None:
    with pytest.raises(ConfigError, match="--segment-budget"):
        TrainOptions(data=tmp_path / "x.csv", segment_budget=budget)


# -- which rows are calibrated on ----------------------------------------------------------------
def test_the_calibration_frame_is_train_and_validation_sorted_and_utc(tmp_path: Path) -> None:
    dataset = load_csv(line_csv(tmp_path / "h.csv"))
    bounds = chronological_bounds(dataset, 0.6, 0.2)
    frame = calibration_frame(dataset, bounds, Topology.from_dict(topology_dict()))
    assert list(frame.columns) == ["timestamp", "station_id", *sorted(LINE_SENSORS), "label"]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].max() < pd.Timestamp(bounds.test_start, tz="UTC")
    assert len(frame) == 3 * 160  # 80 % of 200 minutes, three stations
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["station_id"].iloc[:3].tolist() == list(STATIONS)  # aligned by minute


def test_calibrate_line_gets_the_frame_the_budget_and_the_labelled_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake(
        frame: pd.DataFrame, topology: Topology, *, budget_per_segment_month: float, exclude: pd.Series
    ) -> LineCalibration:
        seen.update(frame=frame, budget=budget_per_segment_month, exclude=exclude)
        return LineCalibration(
            {s.segment_id: SegmentCalibration(s.segment_id, limit=7.0) for s in topology.segments},
            budget_per_segment_month,
        )

    monkeypatch.setattr("trainer.line_calibration.calibrate_line", fake)
    dataset = load_csv(line_csv(tmp_path / "h.csv", labelled=(50, 51, 190)))  # minute 190 is in test
    topology = Topology.from_dict(topology_dict())
    line = train_line(topology, dataset, chronological_bounds(dataset), budget_per_segment_month=0.25)
    assert seen["budget"] == 0.25
    assert seen["exclude"].index.equals(seen["frame"].index)
    assert int(seen["exclude"].sum()) == 2 == line.excluded_rows
    assert set(seen["frame"].loc[seen["exclude"], "station_id"]) == {"EST-01"}
    assert set(line.calibration.segments) == {"EST-01>EST-02", "EST-02>EST-03"}


def test_a_calibration_missing_a_segment_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def partial(frame: pd.DataFrame, topology: Topology, **_: Any) -> LineCalibration:
        return LineCalibration({"EST-01>EST-02": SegmentCalibration("EST-01>EST-02")})

    monkeypatch.setattr("trainer.line_calibration.calibrate_line", partial)
    dataset = load_csv(line_csv(tmp_path / "h.csv"))
    with pytest.raises(DataError, match=r"no figures for segment\(s\) EST-02>EST-03"):
        train_line(Topology.from_dict(topology_dict()), dataset, chronological_bounds(dataset))


def test_the_balance_compensates_the_downstream_tank(tmp_path: Path) -> None:
    dataset = load_csv(line_csv(tmp_path / "h.csv"))
    topology = Topology.from_dict(topology_dict())
    frame = calibration_frame(dataset, chronological_bounds(dataset), topology)
    into_tank, tank_to_tight = topology.segments
    # EST-01 sends 500, EST-02 sends 485 on and keeps 15 m3/h in its 250 m2 tank: balance 0.
    balance = segment_balance(frame, into_tank)
    assert balance.iloc[1:].to_numpy() == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(balance.iloc[0])  # no level change before the first minute
    # EST-02 sends 485 and EST-03 500 with a flat level: 15 m3/h appear (negative balance).
    assert segment_balance(frame, tank_to_tight).iloc[1:].to_numpy() == pytest.approx(-15.0, abs=1e-6)


# -- end to end: simulated line, CLI, bundle -----------------------------------------------------
def simulated_line(out: Path) -> tuple[Path, Path]:
    """3 stations × 3 days from the simulator (thefts frequent enough to be labelled) and the
    ``topology.toml`` it writes beside them."""
    from simulator import EventRates, SimulationConfig, simulate
    from simulator.writer import write_outputs

    config = SimulationConfig(stations=3, days=3, seed=1001, rates=EventRates(theft_per_segment_month=20.0))
    written = write_outputs(simulate(config), out)
    assert written.topology is not None
    # The trainer refuses empty cells: rows with a dropped-out sensor are left out (a gap, as live).
    readings = pd.read_csv(written.readings, dtype=str, keep_default_na=False)
    readings = readings[(readings != "").drop(columns=["event_type", "event_id"]).all(axis=1)]
    readings.to_csv(written.readings, index=False)
    return written.readings, written.topology


@pytest.mark.slow
def test_train_with_a_topology_end_to_end(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from centinela.cli import app
    from detector.bundle import load_bundle
    from detector.topology import load_topology

    readings, topology_path = simulated_line(tmp_path / "sim")
    out = tmp_path / "run"
    args = ["train", "--data", str(readings), "--out", str(out), "--window", "10", "--step", "10"]
    args += ["--encoder-units", "4,2", "--decoder-units", "2,4", "--epochs", "1", "--batch-size", "256"]
    args += ["--topology", str(topology_path), "--segment-budget", "0.5", "--lang", "es"]
    # A one-epoch model alarms on many normal test windows; this test is about the line.
    args += ["--accept-operating-point"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output

    bundle = load_bundle(out / "bundle")
    topology = load_topology(topology_path)
    assert bundle.topology == topology
    assert bundle.line_calibration is not None
    assert set(bundle.line_calibration.segments) == {s.segment_id for s in topology.segments}
    assert bundle.line_calibration.budget_per_segment_month == 0.5

    report = json.loads((out / "report.json").read_text())
    line = report["line"]
    assert line["budget_per_segment_month"] == 0.5
    assert line["topology"] == str(topology_path)
    assert set(line["segments"]) == {"EST-01>EST-02", "EST-02>EST-03"}
    assert line["calibrated_on"]["splits"] == ["train", "validation"]
    assert line["calibrated_on"]["end"] < report["split_bounds"]["test_start"]
    assert line["calibrated_on"]["excluded_labelled_rows"] > 0  # the thefts' rows were left out
    for segment in line["segments"].values():
        assert (
            segment["calibration"]
            == bundle.line_calibration.segments[segment["calibration"]["segment_id"]].to_dict()
        )
        assert segment["training_balance"]["minutes"] > 0
    assert report["options"]["segment_budget"] == 0.5
    assert "Línea: calibración por tramo" in (out / "report.md").read_text()
    assert (out / "plots" / "line_balance.png").stat().st_size > 0
    assert "## Línea (detección de tomas por tramo)" in (out / "MODEL_CARD.md").read_text()  # --lang es


def test_the_balance_aligns_stations_whose_clocks_are_seconds_apart(tmp_path: Path) -> None:
    dataset = load_csv(line_csv(tmp_path / "h.csv"))
    topology = Topology.from_dict(topology_dict())
    frame = calibration_frame(dataset, chronological_bounds(dataset), topology)
    skewed = frame.copy()
    late = skewed["station_id"] == "EST-02"
    skewed.loc[late, "timestamp"] = skewed.loc[late, "timestamp"] + pd.Timedelta(seconds=20)
    balance = segment_balance(skewed, topology.segments[0])
    assert len(balance) == 160
    assert balance.iloc[1:].to_numpy() == pytest.approx(0.0, abs=1e-6)


def test_options_take_a_topology_file_or_object_and_record_where_it_came_from(tmp_path: Path) -> None:
    topology = Topology.from_dict(topology_dict())
    as_file = TrainOptions(data=tmp_path / "h.csv", topology=tmp_path / "t.toml", segment_budget=0.5)
    as_object = TrainOptions(data=tmp_path / "h.csv", topology=topology)
    assert as_file.to_dict()["topology"] == str(tmp_path / "t.toml")
    assert as_file.to_dict()["segment_budget"] == 0.5
    assert as_object.to_dict()["topology"] == "topology given to run_training"
    assert TrainOptions(data=tmp_path / "h.csv").to_dict()["topology"] is None


def test_the_report_line_section_and_card(tmp_path: Path) -> None:
    from trainer.line import line_report
    from trainer.reports import _card_line, _render_line, _t

    dataset = load_csv(line_csv(tmp_path / "h.csv"))
    topology = Topology.from_dict(topology_dict())
    line = train_line(topology, dataset, chronological_bounds(dataset), budget_per_segment_month=0.5)
    report = line_report(line, "topo.toml")
    assert report["segments"]["EST-01>EST-02"]["training_balance"]["mean_m3h"] == pytest.approx(0.0, abs=1e-6)
    for lang, title in (("en", "## Line: segment calibration"), ("es", "## Línea: calibración por tramo")):
        text = "\n".join(_render_line(report, lambda key, lang=lang: _t(key, lang)))
        assert title in text
        assert "| limit | " in text and "window_sigma_m3" not in text  # lists stay in report.json
        assert "| km | 40.000 | 50.000 |" in text
    card = "\n".join(_card_line(report))
    assert "topo.toml" in card and "0.5 false alarm(s) per segment-month" in card
    assert _card_line(None) == []


def test_empty_cells_are_gaps_and_unknown_labels_are_excluded_for_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake(
        frame: pd.DataFrame, topology: Topology, *, budget_per_segment_month: float, exclude: pd.Series
    ) -> LineCalibration:
        seen.update(frame=frame, exclude=exclude)
        return LineCalibration(
            {s.segment_id: SegmentCalibration(s.segment_id, limit=7.0) for s in topology.segments},
            budget_per_segment_month,
        )

    monkeypatch.setattr("trainer.line_calibration.calibrate_line", fake)
    path = line_csv(tmp_path / "h.csv", labelled=(50,))
    lines = path.read_text().splitlines()
    # EST-01 (lines 1-200): minute 10 without a flow reading, minutes 20-24 of unknown label.
    lines[1 + 10] = lines[1 + 10].replace(",500.0,", ",,", 1)
    for i in range(20, 25):
        lines[1 + i] = lines[1 + i].rsplit(",", 1)[0] + ","
    path.write_text("\n".join(lines) + "\n")
    dataset = load_csv(path)
    train_line(Topology.from_dict(topology_dict()), dataset, chronological_bounds(dataset))
    frame, exclude = seen["frame"], seen["exclude"]
    assert len(frame) == 3 * 160 - 1 and not frame.isna().any().any()
    assert int(exclude.sum()) == 1 + 5  # the labelled minute and the five unknown ones
