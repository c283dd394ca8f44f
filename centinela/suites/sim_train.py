"""The sim suite's training step: the simulated line's topology, the segment calibration and the
service's bundle (the per-station autoencoder plus the line), all from the training period only.

- ``line_topology``: the topology of the line the simulator drew (segment lengths, pipe diameter,
  tank areas), the file a user would declare.
- ``calibrate``: ``trainer.line_calibration.calibrate_line`` on the training rows, labelled minutes
  excluded (thresholds to the false-alarm budget per segment-month).
- ``train_autoencoder``: the trainer's own pipeline (``trainer.pipeline.run_training``) on the
  training rows; the bundle's threshold is the alarm budget (``budget_threshold``).
- ``export``: the bundle with ``line=(topology, calibration)``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from detector.errors import CentinelaError

if TYPE_CHECKING:
    import pandas as pd

    from detector.line import LineCalibration
    from detector.topology import Topology
    from replay.simulator.result import SimulationResult
    from trainer.pipeline import RunResult

FIT_SEED = 42
LINE_ID = "L1"
BUDGET = "alarm_budget"
# Windows this soon after a labelled window still carry the tap's after-effect (the downstream tank
# refills for about an hour): the alarm-budget threshold ignores them.
RECOVERY = timedelta(minutes=90)


@dataclass(frozen=True)
class ModelSize:
    encoder_units: tuple[int, ...]
    epochs: int
    patience: int


def sensors() -> tuple[str, ...]:
    from replay.simulator import SENSORS

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
    """The declared topology of the simulated line: every station with its breakout tank, every
    segment that ends at a station with its length and the pipe's inner diameter."""
    from detector.topology import Topology

    line = result.line
    ids = list(result.station_ids)
    return Topology.from_dict(
        {
            "line": [
                {
                    "id": LINE_ID,
                    "station": [{"id": sid, "tank_area_m2": float(line.tank_area)} for sid in ids],
                    "segment": [
                        {
                            "upstream": ids[j],
                            "downstream": ids[j + 1],
                            "length_km": round(float(line.segment_km[j]), 3),
                            "inner_diameter_m": float(result.config.pipe_diameter_m),
                        }
                        for j in range(len(ids) - 1)
                    ],
                }
            ]
        },
        where="the simulated line's topology",
    )


def calibrate(result: SimulationResult, test_start: int, topology: Topology) -> LineCalibration:
    """The segment calibration from the training period only (labelled minutes excluded)."""
    from trainer.line_calibration import calibrate_line

    frame = period(result, test_start, test=False)
    columns = ["timestamp", "station_id", *sorted(topology.required_sensors())]
    train = frame[columns].assign(station_id=frame["station_id"].astype(str)).reset_index(drop=True)
    exclude = frame["label"].to_numpy() == 1
    import pandas as pd

    return calibrate_line(train, topology, exclude=pd.Series(exclude, index=train.index))


def train_autoencoder(result: SimulationResult, test_start: int, size: ModelSize) -> RunResult:
    """The trainer's own pipeline on the training period, all sensors (rows with an empty cell left
    out: the trainer refuses them; live, the replay refuses them too, so both see a gap)."""
    from trainer.model import FitConfig, ModelConfig
    from trainer.pipeline import AUTOENCODER, TrainOptions, run_training

    columns = ["timestamp", "station_id", *sensors(), "label"]
    frame = period(result, test_start, test=False)[columns].dropna()
    decoder = tuple(reversed(size.encoder_units))
    model = ModelConfig(encoder_units=size.encoder_units, decoder_units=decoder)
    fit = FitConfig(epochs=size.epochs, patience=size.patience, seed=FIT_SEED, batch_size=64)
    with tempfile.TemporaryDirectory(prefix="centinela-sim-") as tmp:
        csv = Path(tmp) / "train.csv"
        frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(csv, index=False)
        trained = run_training(TrainOptions(data=csv, sensors=sensors(), model=model, fit=fit))
    ae = trained.models[AUTOENCODER]
    validation = trained.prepared["validation"]
    threshold = budget_threshold(
        ae.scores["validation"], validation.labels, validation.station_ids, validation.ends
    )
    record = dataclasses.replace(ae.calibration, threshold=threshold, method=BUDGET, percentile=None)
    trained.models[AUTOENCODER] = dataclasses.replace(ae, calibration=record)
    return trained


def budget_threshold(
    scores: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int8],
    station_ids: npt.NDArray[np.str_],
    ends: npt.NDArray[np.datetime64],
) -> float:
    """The largest validation score on windows clear of any tap (no label, not in a tap's recovery).

    With k = n = 1 every window above the threshold opens an incident, so this is the threshold that
    would have raised no false alarm on the validation weeks: a false-alarm budget of about one per
    validation period, chosen without test data.
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
    if not clear.any():
        raise CentinelaError("no tap-free validation windows to set the alarm-budget threshold on")
    return float(scores[clear].max())


def export(trained: RunResult, out_dir: Path, line: tuple[Topology, LineCalibration]) -> Path:
    """Write the service's bundle (the trainer's export, with the line) to ``out_dir``."""
    import inspect

    from trainer.export import export_bundle

    if "line" in inspect.signature(export_bundle).parameters:
        written: Path = export_bundle(trained, out_dir, line=line)  # type: ignore[call-arg,unused-ignore]
        return written
    return _export_with_line(trained, out_dir, line)


def _export_with_line(trained: RunResult, out_dir: Path, line: tuple[Topology, LineCalibration]) -> Path:
    """``trainer.export.export_bundle`` with ``line`` passed to ``write_bundle`` (until the trainer's
    export takes a line itself)."""
    from datetime import UTC, datetime

    from detector.bundle import write_bundle
    from detector.readings import DEFAULT_LIMITS
    from trainer.export import model_version, serving_onnx, training_record

    created_at = datetime.now(UTC).replace(microsecond=0)
    ae = trained.autoencoder
    with tempfile.TemporaryDirectory(prefix="centinela-export-") as tmp:
        exported = serving_onnx(trained.trained.model, trained.prepared["train"].x)
        keras_file = Path(tmp) / "model.keras"
        trained.trained.model.save(keras_file)
        calibration: dict[str, Any] = ae.calibration.to_dict()
        calibration["test"] = [c.to_dict() for c in ae.test_strategies]
        calibration["aggregation"] = trained.aggregation
        return write_bundle(
            out_dir,
            onnx_model=exported.onnx,
            keras_model_file=keras_file,
            model_version=model_version(trained, created_at),
            sensors=trained.prepared.sensors,
            window=trained.prepared.spec,
            scalers=trained.prepared.scalers,
            aggregation=trained.aggregation,
            threshold=ae.calibration.threshold,
            topk=trained.options.topk,
            calibration=calibration,
            training={**training_record(trained), "serving_export": exported.to_dict()},
            limits={n: DEFAULT_LIMITS[n] for n in trained.prepared.sensors if n in DEFAULT_LIMITS},
            line=line,
            created_at=created_at,
            overwrite=True,
        )
