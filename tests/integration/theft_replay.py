"""A simulator replay with several thefts, for the exactly-once tests (docs/exactly-once.md).

``simulator`` draws a small line (four stations, two days, one reading a minute each: 11,520
readings) with its normal life (daily demand cycle, a pump stop, set-point and batch changes) and
four scripted thefts, so the thefts are certain whatever the seed draws. The readings CSV the
simulator writes goes to Kafka through the real replay path (``replay.producer.replay_csv``): flat
out, whole or cut by event time, or paced on a thread while a detector runs (:class:`PacedReplay`).

The model is the hand-made linear stand-in (score = 0.25 · mean of the scaled readings squared), so
what the detector flags depends only on its scalers and threshold, both fitted here on the
simulated data without looking at the thefts: per-station scalers on the rows no event touches,
and the threshold at the 99th percentile of the scores of the windows no event touches. Crossing
it: the four thefts (at the stations at both ends of their segment, and downstream), the pump stop
and the odd quiet window — nine incidents and 64 alerts in an offline run.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detector.bundle import load_bundle, write_bundle
from detector.onnx_runtime import onnx_scorers
from detector.readings import DEFAULT_SENSORS
from detector.scaling import Scaler, StationScalers
from detector.windows import WindowSpec, batch_windows
from devtools.stand_ins import linear_onnx_model
from replay.csv_source import SourceOptions
from replay.producer import ReplayOptions, replay_csv
from simulator import SimulationConfig, simulate
from simulator.event import Event
from simulator.writer import write_outputs

# Minutes from the start of the run; segment i runs from station i to station i + 1.
THEFTS = (
    Event.theft(0, 300, 420, 0.2),
    Event.theft(1, 1000, 1100, 0.25),
    Event.theft(2, 1900, 2040, 0.3),
    Event.theft(0, 2500, 2600, 0.3),
)
# Only the scripted thefts: no drawn theft, leak or sensor fault (a drawn sensor fault can hold one
# station's incident open for a day); the rest of normal life stays.
CONFIG = SimulationConfig(stations=4, days=2, seed=11, scripted=THEFTS).with_rates(
    theft_per_segment_month=0.0, leak_per_segment_month=0.0, sensor_fault_per_station_month=0.0
)
THRESHOLD_QUANTILE = 0.99
MODEL_VERSION = "sim-linear-eo"


@dataclass(frozen=True)
class TheftSpan:
    """Where and when one theft shows: the stations at both ends of its segment, its event times."""

    stations: frozenset[str]
    start: datetime
    end: datetime


@dataclass(frozen=True)
class TheftLine:
    """The simulated readings file, the bundle fitted to it, and where the thefts are."""

    readings: Path
    bundle: Path
    first: datetime  # event time of the first reading
    last: datetime  # event time of the last reading
    thefts: tuple[TheftSpan, ...]
    rows: int

    def time_cuts(self, rng: random.Random, count: int) -> list[datetime]:
        """``count`` whole-minute event times cutting the run into ``count + 1`` parts of roughly
        equal length, each cut moved at random by up to a tenth of a part (so none is tiny)."""
        minutes = int((self.last - self.first) / timedelta(minutes=1)) + 1
        part = minutes / (count + 1)
        return [
            self.first + timedelta(minutes=round(part * (index + 1) + rng.uniform(-0.1, 0.1) * part))
            for index in range(count)
        ]

    def theft_incidents(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The incident openings at a theft's station while it lasts (or within a window after)."""
        slack = WindowSpec().length
        found = []
        for alert in alerts:
            if alert["kind"] != "incident" or alert["status"] != "open":
                continue
            end = datetime.fromisoformat(alert["window_end"])
            if any(
                alert["station_id"] in theft.stations and theft.start < end <= theft.end + slack
                for theft in self.thefts
            ):
                found.append(alert)
        return found


def simulate_theft_line(folder: Path) -> TheftLine:
    """Simulate :data:`CONFIG`, write its files under ``folder`` and a bundle fitted to them."""
    result = simulate(CONFIG)
    readings = write_outputs(result, folder / "sim").readings
    frame = pd.read_csv(readings)
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    sensors = list(DEFAULT_SENSORS)
    quiet_rows = frame["event_type"].isna()  # no event of any kind, normal life's included
    scalers = StationScalers(
        per_station={
            station: Scaler.fit(
                frame.loc[quiet_rows & (frame["station_id"] == station), sensors].to_numpy(np.float64)
            )
            for station in result.station_ids
        },
        fallback=Scaler(np.zeros(len(sensors)), np.ones(len(sensors))),
    )
    probe = load_bundle(
        _write_bundle(folder / "probe", scalers, threshold=1.0), reconstructor_factory=onnx_scorers(threads=1)
    )
    quiet_scores: list[float] = []
    for station in result.station_ids:
        mine = (frame["station_id"] == station).to_numpy()
        times = stamps[mine].dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
        windows = batch_windows(times, frame.loc[mine, sensors].to_numpy(np.float64), probe.window_spec)
        scores = probe.score([station] * len(windows.data), windows.data).scores
        # A window is quiet when none of its minutes carries an event (prefix sums over the rows).
        touched = np.concatenate([[0], np.cumsum(~quiet_rows.to_numpy()[mine])])
        last_row = np.searchsorted(times, windows.ends, side="left")
        first_row = np.searchsorted(times, windows.ends - np.timedelta64(probe.window_spec.length), "left")
        quiet_scores += scores[touched[last_row] == touched[first_row]].tolist()
    threshold = float(np.quantile(quiet_scores, THRESHOLD_QUANTILE))
    thefts = tuple(
        TheftSpan(
            frozenset(result.station_ids[i] for i in event.stations),
            CONFIG.start + timedelta(minutes=event.start),
            CONFIG.start + timedelta(minutes=event.end),
        )
        for event in THEFTS
    )
    return TheftLine(
        readings=readings,
        bundle=_write_bundle(folder / "bundle", scalers, threshold),
        first=stamps.min().to_pydatetime(),
        last=stamps.max().to_pydatetime(),
        thefts=thefts,
        rows=len(frame),
    )


def _write_bundle(folder: Path, scalers: StationScalers, threshold: float) -> Path:
    spec = WindowSpec()
    sensors = list(DEFAULT_SENSORS)
    return write_bundle(
        folder,
        onnx_model=linear_onnx_model(spec.samples_per_window, len(sensors)),
        keras_model_file=None,
        model_version=MODEL_VERSION,
        sensors=sensors,
        window=spec,
        scalers=scalers,
        aggregation="mean",
        threshold=threshold,
    )


def replay(
    bootstrap: str, topic: str, line: TheftLine, start: datetime | None = None, end: datetime | None = None
) -> int:
    """Send the line's readings with event times in ``[start, end)`` (default: all) to ``topic``
    with ``replay_csv``, flat out, keyed by station; returns how many were delivered."""
    options = ReplayOptions(source=SourceOptions(start=start, end=end), use_process=False)
    summary = replay_csv(line.readings, topic, options, {"bootstrap.servers": bootstrap})
    assert summary.delivery_errors == 0 and summary.rejected == 0, summary.to_dict()
    return summary.delivered


class PacedReplay:
    """The whole line replayed on a thread at ``speed`` × real time, as a live feed arrives: the
    readings of every station come in together, so a detector keeps up and reads all its
    partitions evenly (from a backlog, librdkafka hands out one partition after another)."""

    def __init__(self, bootstrap: str, topic: str, line: TheftLine, speed: float) -> None:
        self._run = lambda: replay_csv(
            line.readings,
            topic,
            ReplayOptions(speed=speed, use_process=False),
            {"bootstrap.servers": bootstrap},
        )
        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=self._target, name="paced-replay", daemon=True)

    def _target(self) -> None:
        try:
            self._outcome.append(self._run())
        except BaseException as error:  # handed to the test by wait()
            self._outcome.append(error)

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout_s: float) -> int:
        """Readings delivered, once the replay has ended; its error, if it failed."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"the replay did not end within {timeout_s:g} s"
        (outcome,) = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome.delivery_errors == 0 and outcome.rejected == 0, outcome.to_dict()
        return int(outcome.delivered)
