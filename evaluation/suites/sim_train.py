"""The sim suite's training step: the simulated line's topology, the segment calibration and the
service's bundle (the per-station autoencoder plus the line), all from the training period only.

- ``line_topology``: the topology of the line the simulator drew (``SimulationResult.topology``,
  the topology.toml ``centinela simulate`` writes).
- ``train_service``: the trainer's own pipeline with the topology (``trainer.pipeline.run_training``,
  ``TrainOptions.topology``) on the training rows: the autoencoder, whose threshold is then set to
  the alarm budget (``budget_threshold``), and the segment calibration
  (``trainer.line.train_line``: the trainer's training and validation periods, labelled rows out).
- ``calibrate``: the same segment calibration without the autoencoder (seeds that run the line alone).
- ``export``: the trainer's bundle export (the line travels in the manifest).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from detector.errors import CentinelaError

if TYPE_CHECKING:
    import pandas as pd

    from detector.line import LineCalibration
    from detector.topology import Topology
    from simulator.result import SimulationResult
    from trainer.pipeline import RunResult

FIT_SEED = 42
BUDGET = "alarm_budget"
# Windows this soon after a labelled window still carry the tap's after-effect (the downstream tank
# refills for about an hour): the alarm-budget threshold ignores them.
RECOVERY = timedelta(minutes=90)
WINDOW = timedelta(minutes=30)  # the trainer's window: a window ending at t holds [t - 30 min, t)


@dataclass(frozen=True)
class ModelSize:
    encoder_units: tuple[int, ...]
    epochs: int
    patience: int


def sensors() -> tuple[str, ...]:
    from simulator import SENSORS

    return tuple(SENSORS)


def period(result: SimulationResult, test_start: int, *, test: bool) -> pd.DataFrame:
    """The readings (long layout) of the training period, or of the test period."""
    frame = result.frame
    boundary = frame["timestamp"].iloc[0] + timedelta(minutes=test_start)
    chosen: pd.DataFrame = (
        frame[frame["timestamp"] >= boundary] if test else frame[frame["timestamp"] < boundary]
    )
    return chosen


def line_topology(result: SimulationResult) -> Topology:
    """The declared topology of the simulated line (``SimulationResult.topology``: the file
    ``centinela simulate`` writes as topology.toml)."""
    return result.topology()


def _training_csv(result: SimulationResult, test_start: int, folder: Path) -> Path:
    """The training period as the trainer reads it (rows with an empty cell left out: the trainer
    refuses them; live, the replay refuses them too, so both see a gap)."""
    columns = ["timestamp", "station_id", *sensors(), "label"]
    frame = period(result, test_start, test=False)[columns].dropna()
    csv = folder / "train.csv"
    frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(csv, index=False)
    return csv


def calibrate(result: SimulationResult, test_start: int, topology: Topology) -> LineCalibration:
    """The segment calibration the trainer would store (``trainer.line.train_line``: the training
    and validation periods of its chronological split of the training period, labelled rows
    excluded), without training an autoencoder."""
    from trainer.data import load_csv
    from trainer.line import train_line
    from trainer.split import chronological_bounds

    with tempfile.TemporaryDirectory(prefix="centinela-sim-") as tmp:
        data = load_csv(_training_csv(result, test_start, Path(tmp)), sensors=sensors())
    return train_line(topology, data, chronological_bounds(data), source="the simulated line").calibration


def train_service(
    result: SimulationResult, test_start: int, size: ModelSize, topology: Topology
) -> RunResult:
    """The trainer's own pipeline with the topology (``trainer.pipeline.run_training``) on the
    training period, all sensors; the autoencoder's threshold is then the alarm budget."""
    from trainer.model import FitConfig, ModelConfig
    from trainer.operating_point import check_operating_point
    from trainer.pipeline import AUTOENCODER, TrainOptions, normal_windows, run_training

    decoder = tuple(reversed(size.encoder_units))
    model = ModelConfig(encoder_units=size.encoder_units, decoder_units=decoder)
    fit = FitConfig(epochs=size.epochs, patience=size.patience, seed=FIT_SEED, batch_size=64)
    with tempfile.TemporaryDirectory(prefix="centinela-sim-") as tmp:
        csv = _training_csv(result, test_start, Path(tmp))
        options = TrainOptions(data=csv, sensors=sensors(), model=model, fit=fit, topology=topology)
        trained = run_training(options)
    ae = trained.models[AUTOENCODER]
    validation = trained.prepared["validation"]
    threshold = budget_threshold(
        ae.scores["validation"],
        validation.labels,
        validation.station_ids,
        validation.ends,
        sensor_fault_spans(result),
    )
    record = dataclasses.replace(ae.calibration, threshold=threshold, method=BUDGET, percentile=None)
    trained.models[AUTOENCODER] = dataclasses.replace(ae, calibration=record)
    # The trainer checked its own threshold on the normal test windows; check the one served instead.
    trained.operating_point = check_operating_point(
        normal_windows(trained.prepared["test"], ae.scores["test"]),
        trained.prepared.spec.step,
        threshold,
        trained.options.max_normal_alarm_share,
    )
    return trained


def budget_threshold(
    scores: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int8],
    station_ids: npt.NDArray[np.str_],
    ends: npt.NDArray[np.datetime64],
    faults: Sequence[tuple[str, np.datetime64, np.datetime64]] = (),
) -> float:
    """The largest validation score on normal windows: no label, not in a tap's recovery, and not
    overlapping a known sensor fault of that station (``faults``: station, start, end).

    With k = n = 1 every window above the threshold opens an incident, so this is the threshold that
    would have raised no false alarm on the normal validation weeks: a false-alarm budget of about
    one per validation period, chosen without test data. Known instrument faults are left out
    because one spike of a few tenths of a reading sets a threshold thousands of times the normal
    scores (measured: 4,857 on seed 7's 60 days), and the autoencoder then never alarms.
    """
    clear = labels == 0
    for station in np.unique(station_ids):
        mine = np.flatnonzero(station_ids == station)
        tapped = ends[mine][labels[mine] == 1]
        if not tapped.size:
            continue
        since = ends[mine][:, None] - tapped[None, :]
        near = ((since >= np.timedelta64(0, "ns")) & (since <= np.timedelta64(RECOVERY))).any(axis=1)
        clear[mine[near]] = False
    window = np.timedelta64(WINDOW)
    for station, start, end in faults:
        touched = (
            (station_ids == station) & (ends > start) & (ends - window <= end + np.timedelta64(RECOVERY))
        )
        clear[touched] = False
    if not clear.any():
        raise CentinelaError("no tap-free validation windows to set the alarm-budget threshold on")
    return float(scores[clear].max())


def sensor_fault_spans(result: SimulationResult) -> list[tuple[str, np.datetime64, np.datetime64]]:
    """Every simulated sensor fault as (station, start, end), in the validation scores' time unit."""
    events = result.events_frame()
    faults = events[events["event_type"] == "sensor_fault"]
    return [
        (
            str(station),
            np.datetime64(start.tz_convert(None).to_datetime64(), "ns"),
            np.datetime64(end.tz_convert(None).to_datetime64(), "ns"),
        )
        for station, start, end in zip(faults["station_id"], faults["start"], faults["end"], strict=True)
    ]


def export(trained: RunResult, out_dir: Path) -> Path:
    """Write the service's bundle (the trainer's export: the autoencoder and the line) to ``out_dir``."""
    from trainer.export import export_bundle

    return export_bundle(trained, out_dir)
