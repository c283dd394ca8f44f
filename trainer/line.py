"""The training run's line step: check a declared topology against the history, calibrate its segments.

``centinela train --topology FILE`` adds this step to the usual run. The per-station autoencoder is
trained as before; besides it, every segment of the topology gets its sequential test calibrated
(``trainer.line_calibration.calibrate_line``) to a false-alarm budget per segment-month, and the
bundle carries both (manifest ``line``).

Which rows: everything before the test split, i.e. the training and validation periods, every
station cut at the same instants (``SplitBounds``), labelled rows (``label`` 1) excluded. The
autoencoder fits on training and chooses its threshold on validation; the segment test has nothing
that can overfit training, and a budget of about one alarm per segment-month needs every normal day
it can get. The test split stays untouched, so its figures remain an honest estimate for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from detector.errors import ConfigError, DataError
from detector.line.calibration import LineCalibration
from detector.topology import Segment, Topology, load_topology
from trainer.data import Dataset
from trainer.split import SplitBounds

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_SEGMENT_BUDGET = 1.0  # false alarms per segment-month
CALIBRATION_SPLITS = ("train", "validation")
LABEL = "label"


@dataclass(frozen=True)
class LineTraining:
    """What the line step learned, and on which rows (for the report and the bundle)."""

    topology: Topology
    calibration: LineCalibration
    budget_per_segment_month: float
    frame: pd.DataFrame  # the rows calibrated on (long form: timestamp, station_id, fields, label)
    excluded_rows: int
    source: str

    @property
    def rows(self) -> int:
        return len(self.frame)

    def span(self) -> tuple[str, str]:
        """First and last timestamp calibrated on (ISO 8601, UTC)."""
        times = self.frame["timestamp"]
        return _iso(times.min()), _iso(times.max())


def resolve_topology(topology: Path | Topology) -> Topology:
    """The topology itself: loaded (and validated, errors naming the field) when given as a file."""
    return topology if isinstance(topology, Topology) else load_topology(topology)


def check_topology_against_data(topology: Topology, dataset: Dataset, where: str) -> None:
    """Refuse a topology the history cannot serve, naming the station or field.

    Every station the topology declares must have rows, and every field the balance reads must be one
    of the model's sensor columns: the bundle's sensors are all the service parses from a reading.
    """
    missing_stations = sorted(topology.station_ids - set(dataset.stations))
    if missing_stations:
        raise DataError(
            f"{where}: station(s) {', '.join(missing_stations)} of the topology have no rows in "
            f"{dataset.source} (its stations: {', '.join(dataset.stations)})"
        )
    missing_fields = sorted(topology.required_sensors() - set(dataset.sensors))
    if missing_fields:
        raise DataError(
            f"{where}: field(s) {', '.join(missing_fields)} used by the segment balance are not sensor "
            f"columns of {dataset.source} (sensors: {', '.join(dataset.sensors)}; check --sensors)"
        )


def calibration_frame(dataset: Dataset, bounds: SplitBounds, topology: Topology) -> pd.DataFrame:
    """The topology's stations before the test split, in long form, sorted by timestamp then station.

    Columns: ``timestamp`` (tz-aware UTC), ``station_id``, every field the balance reads, ``label``.
    A row missing one of those fields (an empty cell) is left out: the line sees a gap there, as live,
    where a reading without a field it needs is refused.
    """
    import pandas as pd

    fields = sorted(topology.required_sensors())
    columns = [dataset.sensors.index(name) for name in fields]
    parts = []
    for station_id in sorted(topology.station_ids):
        series = dataset.stations[station_id]
        keep = (series.ts < bounds.test_start) & np.isfinite(series.values[:, columns]).all(axis=1)
        part = pd.DataFrame(series.values[keep][:, columns], columns=fields)
        part.insert(0, "station_id", station_id)
        part.insert(0, "timestamp", pd.to_datetime(series.ts[keep]).tz_localize("UTC"))
        part[LABEL] = series.labels[keep]
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["timestamp", "station_id"], kind="stable", ignore_index=True)


def train_line(
    topology: Topology,
    dataset: Dataset,
    bounds: SplitBounds,
    *,
    budget_per_segment_month: float = DEFAULT_SEGMENT_BUDGET,
    source: str = "topology",
) -> LineTraining:
    """Calibrate every segment on the training and validation periods, labelled rows excluded."""
    from trainer.line_calibration import calibrate_line

    check_topology_against_data(topology, dataset, source)
    frame = calibration_frame(dataset, bounds, topology)
    if frame.empty:
        raise DataError(f"{dataset.source}: no rows before the test split to calibrate the segments on")
    # Labelled rows are not normal operation; rows of unknown label (-1) are not known to be.
    exclude = frame[LABEL] != 0
    calibration = calibrate_line(
        frame, topology, budget_per_segment_month=budget_per_segment_month, exclude=exclude
    )
    absent = sorted(s.segment_id for s in topology.segments if s.segment_id not in calibration.segments)
    if absent:
        raise DataError(
            f"{source}: the line calibration returned no figures for segment(s) {', '.join(absent)}"
        )
    return LineTraining(
        topology=topology,
        calibration=calibration,
        budget_per_segment_month=budget_per_segment_month,
        frame=frame,
        excluded_rows=int(exclude.sum()),
        source=source,
    )


def check_budget(budget: float) -> None:
    if not (math.isfinite(budget) and budget > 0):
        raise ConfigError(
            f"--segment-budget must be a positive number of false alarms per segment-month, got {budget}"
        )


def segment_balance(frame: pd.DataFrame, segment: Segment) -> pd.Series:
    """A segment's level-compensated balance per minute (m³/h), for the report's plot and figures.

    ``flow[up] − flow[down] − A_down · d(level[down])/dt − deliveries + injections``: positive when
    flow goes missing between the stations. No line pack term and no validation of the meters: this
    is the picture of what the calibration saw, not the detector's statistic. Timestamps are put on
    the minute grid first (stations' clocks may be skewed by seconds); minutes where a station has no
    row are NaN.
    """
    import pandas as pd

    on_grid = frame.drop(columns=[LABEL], errors="ignore").assign(
        timestamp=frame["timestamp"].dt.round("1min")
    )
    wide = on_grid.groupby(["timestamp", "station_id"]).mean().unstack("station_id")
    wide = wide.reindex(pd.date_range(wide.index.min(), wide.index.max(), freq="1min"))
    up, down = segment.upstream, segment.downstream

    def column(name: str, station_id: str) -> pd.Series:
        return wide[(name, station_id)].astype(float)

    balance = column(up.sensor("flow"), up.id) - column(down.sensor("flow"), down.id)
    area = down.tank_area
    if area is not None:
        hours = wide.index.to_series().diff().dt.total_seconds() / 3600.0
        balance = balance - area * column(down.sensor("tank_level"), down.id).diff() / hours
    for meter in segment.decl.meter:
        sign = -1.0 if meter.kind == "delivery" else 1.0
        balance = balance + sign * column(meter.sensor, meter.station_id)
    return balance


def balance_summary(balance: pd.Series) -> dict[str, float | int]:
    """Mean, spread and count of a balance's finite minutes."""
    values: npt.NDArray[np.float64] = balance.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    return {
        "minutes": len(finite),
        "mean_m3h": float(finite.mean()) if len(finite) else math.nan,
        "std_m3h": float(finite.std()) if len(finite) else math.nan,
    }


def line_report(line: LineTraining, topology_source: str | None) -> dict[str, Any]:
    """The report's ``line`` section: what was calibrated, on which rows, with which figures."""
    start, end = line.span()
    normal = line.frame[line.frame[LABEL] == 0]
    segments = {}
    for segment in line.topology.segments:
        segments[segment.segment_id] = {
            "line_id": segment.line_id,
            "upstream": segment.upstream.id,
            "downstream": segment.downstream.id,
            "length_km": segment.length_km,
            "budget_per_segment_month": line.budget_per_segment_month,
            "calibration": line.calibration.segments[segment.segment_id].to_dict(),
            "training_balance": balance_summary(segment_balance(normal, segment)),
        }
    return {
        "topology": topology_source,
        "lines": [declared.id for declared in line.topology.lines],
        "budget_per_segment_month": line.budget_per_segment_month,
        "calibrated_on": {
            "splits": list(CALIBRATION_SPLITS),
            "start": start,
            "end": end,
            "rows": line.rows,
            "excluded_labelled_rows": line.excluded_rows,
            "stations": sorted(line.topology.station_ids),
        },
        "record": line.calibration.record,
        "segments": segments,
    }


def _iso(value: Any) -> str:
    import pandas as pd

    return str(pd.Timestamp(value).tz_convert("UTC").isoformat().replace("+00:00", "Z"))
