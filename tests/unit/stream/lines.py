"""A simulated line for the service's segment tests: topology, bundle, wire messages, a fake monitor."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from detector.bundle import write_bundle
from detector.incidents import Alert, SegmentRef, alert_id, incident_id
from detector.line import LineCalibration, SegmentCalibration, SegmentView
from detector.readings import format_ts
from detector.testing import FIXED_CREATED_AT, default_scalers
from detector.topology import Topology
from detector.windows import WindowSpec
from devtools.stand_ins import linear_onnx_model
from simulator import Event, SimulationConfig, SimulationResult, simulate

LINE_SENSORS = ("flow", "pressure", "pump_rpm", "tank_level", "power", "suction_pressure")

Reading = tuple[str, datetime, dict[str, float]]


def simulated(stations: int = 3, days: float = 1.0, seed: int = 1001, theft: bool = True) -> SimulationResult:
    scripted = (Event.theft(0, 300, 480, 0.08),) if theft else ()
    return simulate(
        SimulationConfig(stations=stations, days=days, seed=seed, noise_scale=0.0, scripted=scripted)
    )


def topology_of(result: SimulationResult, line_id: str = "L1") -> Topology:
    ids = result.station_ids
    return Topology.from_dict(
        {
            "format": 1,
            "line": [
                {
                    "id": line_id,
                    "station": [{"id": sid, "tank_area_m2": float(result.line.tank_area)} for sid in ids],
                    "segment": [
                        {
                            "upstream": ids[j],
                            "downstream": ids[j + 1],
                            "length_km": round(float(result.line.segment_km[j]), 3),
                            "inner_diameter_m": result.config.pipe_diameter_m,
                        }
                        for j in range(len(ids) - 1)
                    ],
                }
            ],
        }
    )


def calibration_of(topology: Topology) -> LineCalibration:
    return LineCalibration({s.segment_id: SegmentCalibration(s.segment_id) for s in topology.segments})


def line_bundle(folder: Path, topology: Topology, stations: Sequence[str], threshold: float = 50.0) -> Path:
    spec = WindowSpec()
    return write_bundle(
        folder,
        onnx_model=linear_onnx_model(spec.samples_per_window, len(LINE_SENSORS), 0.5),
        keras_model_file=None,
        model_version="test-line-1",
        sensors=LINE_SENSORS,
        window=spec,
        scalers=default_scalers(len(LINE_SENSORS), stations),
        aggregation="mean",
        threshold=threshold,
        calibration={"method": "fixed"},
        training={"note": "test"},
        line=(topology, calibration_of(topology)),
        created_at=FIXED_CREATED_AT,
    )


def readings_of(result: SimulationResult, sensors: Sequence[str] = LINE_SENSORS) -> list[Reading]:
    """Every present reading, in event-time then station order (as the offline oracle takes them)."""
    out: list[Reading] = []
    times = result.times.astype("datetime64[us]").tolist()
    for t, stamp in enumerate(times):
        ts = stamp.replace(tzinfo=UTC)
        for s, station_id in enumerate(result.station_ids):
            if not result.present[t, s]:
                continue
            values = {name: float(result.readings[name][t, s]) for name in sensors}
            if all(np.isfinite(v) for v in values.values()):
                out.append((station_id, ts, values))
    return out


def wire(readings: Sequence[Reading]) -> list[tuple[bytes, bytes]]:
    return [
        (sid.encode(), orjson.dumps({"station_id": sid, "ts": format_ts(ts), **values}))
        for sid, ts, values in readings
    ]


class FakeMonitor:
    """Opens a tap on a segment while, at the same minute, upstream flow exceeds downstream by more
    than ``gap`` m3/h, and closes it when it no longer does: enough to check the plumbing (ordering,
    ownership, state) against an offline run of the same fake."""

    def __init__(
        self,
        topology: Topology,
        calibration: LineCalibration,
        model_version: str,
        clock: Callable[[], datetime],
        gap: float = 20.0,
    ) -> None:
        self.topology = topology
        self.version = model_version
        self.clock = clock
        self.gap = gap
        self.flows: dict[str, dict[str, float]] = {}  # minute -> station -> flow
        self.done: str = ""  # newest minute evaluated
        self.open: dict[str, str] = {}  # segment -> incident id

    def add(self, station_id: str, ts: datetime, values: Mapping[str, float]) -> bool:
        minute = format_ts(ts)
        if minute <= self.done:
            return False
        self.flows.setdefault(minute, {})[station_id] = values["flow"]
        return True

    def add_row(
        self, station_id: str, seconds: float, fields: tuple[str, ...], values: tuple[float, ...]
    ) -> bool:
        return self.add(
            station_id, datetime.fromtimestamp(seconds, UTC), dict(zip(fields, values, strict=True))
        )

    def advance(self) -> list[Alert]:
        alerts: list[Alert] = []
        stations = self.topology.station_ids
        for minute in sorted(self.flows):
            flows = self.flows[minute]
            if set(flows) != set(stations):
                break
            del self.flows[minute]
            self.done = minute
            ts = datetime.fromisoformat(minute)
            for segment in self.topology.segments:
                up, down = segment.upstream.id, segment.downstream.id
                missing = flows[up] - flows[down] > self.gap
                sid = segment.segment_id
                if missing and sid not in self.open:
                    self.open[sid] = incident_id(up, "tap", ts, self.version)
                    alerts.append(self._alert(segment, "open", ts))
                elif not missing and sid in self.open:
                    alerts.append(self._alert(segment, "close", ts))
                    del self.open[sid]
        return alerts

    def _alert(self, segment: Any, status: str, ts: datetime) -> Alert:
        up = segment.upstream.id
        return Alert(
            alert_id=alert_id(up, "tap", status, ts, self.version),
            incident_id=self.open[segment.segment_id],
            kind="tap",
            status=status,  # type: ignore[arg-type]
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
                line_id=segment.line_id,
                segment_id=segment.segment_id,
                upstream=up,
                downstream=segment.downstream.id,
                length_km=segment.length_km,
            ),
        )

    def open_incidents(self) -> int:
        return len(self.open)

    def open_taps(self) -> Iterator[tuple[str, str, str]]:
        for segment in self.topology.segments:
            if segment.segment_id in self.open:
                yield self.open[segment.segment_id], segment.upstream.id, segment.downstream.id

    def views(self) -> Iterator[SegmentView]:
        for segment in self.topology.segments:
            yield SegmentView(
                segment.segment_id, segment.line_id, 0.0, 0.0, 1.0, None, segment.segment_id in self.open
            )

    def snapshot(self) -> dict[str, Any]:
        return {"flows": self.flows, "done": self.done, "open": self.open}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        self.flows = {m: dict(f) for m, f in snapshot["flows"].items()}
        self.done = snapshot["done"]
        self.open = dict(snapshot["open"])


def fake_offline(
    readings: Sequence[Reading], topology: Topology, model_version: str = "test-line-1"
) -> list[Alert]:
    monitor = FakeMonitor(topology, calibration_of(topology), model_version, lambda: datetime.now(UTC))
    alerts: list[Alert] = []
    for station_id, ts, values in readings:
        monitor.add(station_id, ts, values)
        alerts += monitor.advance()
    return alerts
