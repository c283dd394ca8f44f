"""Regression check for speed work on the line detector: the same history must give the same result.

    PYTHONPATH=. python scripts/line_identity.py --write /tmp/line-identity.json   # before a change
    PYTHONPATH=. python scripts/line_identity.py --check /tmp/line-identity.json   # after it

Simulates one tuning seed (``line_study.py``'s setup: calibration on the first half, test on the
second), calibrates, runs the offline oracle over the test half and a live-style replay with a
snapshot taken, sent through JSON and restored every ``--restore-every`` minutes, and records:
every alert (ids, times, kinds, statistics, estimates, evidence; ``emitted_at`` left out: it is
the wall clock), the calibration record at full precision (it is learned from the per-minute
traces of the balance and the pressure) and every segment's final state at full precision. The
alerts' figures are rounded, the states are not, so an arithmetic change that moved a balance by
one ulp shows here even where no alert moved. ``--check`` exits 1 naming the first difference.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from detector.incidents import Alert
from detector.line.monitor import LineMonitor
from detector.line.segment import SegmentState
from scripts.line_study import readings, topology_of
from simulator import SimulationConfig, simulate
from trainer.line_calibration import calibrate_line


def _alert(alert: Alert) -> dict[str, Any]:
    return alert.model_dump(mode="json", exclude={"emitted_at"})


def capture(seed: int, days: float, theft_rate: float, restore_every: int) -> dict[str, Any]:
    config = SimulationConfig(stations=6, days=days, seed=seed).with_rates(theft_per_segment_month=theft_rate)
    result = simulate(config)
    topology = topology_of(result)
    frame = result.frame
    split = pd.Timestamp(config.start) + pd.Timedelta(days=days / 2)
    train = frame[frame["timestamp"] < split].reset_index(drop=True)
    test = frame[frame["timestamp"] >= split].reset_index(drop=True)
    calibration = calibrate_line(train, topology, exclude=train["label"] == 1)
    fields = sorted(topology.required_sensors())
    rows = list(readings(test, fields))

    oracle = LineMonitor(topology, calibration, model_version="identity")
    alerts: list[Alert] = []
    for station_id, ts, values in rows:
        oracle.add(station_id, ts, values)
        alerts.extend(oracle.advance())
    alerts.extend(oracle.flush())

    # The same readings with the state handed over through JSON now and then: a restored monitor
    # must continue exactly (the service's state records).
    live = LineMonitor(topology, calibration, model_version="identity")
    restored_alerts: list[Alert] = []
    last_minute = None
    for station_id, ts, values in rows:
        live.add(station_id, ts, values)
        restored_alerts.extend(live.advance())
        minute = int(ts.timestamp() // 60)
        if last_minute is None or minute - last_minute >= restore_every:
            last_minute = minute
            snapshot = orjson.loads(orjson.dumps(live.snapshot()))
            live = LineMonitor(topology, calibration, model_version="identity")
            live.restore(snapshot)
    restored_alerts.extend(live.flush())

    return {
        "seed": seed,
        "days": days,
        "alerts": [_alert(a) for a in alerts],
        "restored_alerts": [_alert(a) for a in restored_alerts],
        "calibration": calibration.record,
        "final_state": {state.segment.segment_id: _state_view(state) for state in oracle.segment_states()},
        "final_meters": {
            line_id: {key: value for key, value in data.items() if key != "segments"}
            for line_id, data in oracle.snapshot()["lines"].items()
        },
    }


def _state_view(state: SegmentState) -> dict[str, Any]:
    """A segment's state read from its attributes (not its snapshot, whose encoding may change)."""
    names = ("minute", "bias", "cum", "cusum", "statistic", "gain", "balance", "last_level", "last_pbar")
    view: dict[str, Any] = {name: getattr(state, name) for name in names}
    view.update(
        last_fu=state.last_fu,
        last_fd=state.last_fd,
        last_dfu=state.last_dfu,
        step_hold=state.step_hold,
        queue=[list(entry) for entry in state.queue],
        ring=list(state.ring),
        argmax_window=state.argmax_window,
    )
    track = state.pressure
    pnames = ("offset", "step_z", "frozen_offset", "drop", "drop_sum", "drop_n", "z", "friction_bar")
    view["pressure"] = {name: getattr(track, name) for name in pnames}
    view["pressure"].update(
        recent=list(track.recent),
        cumulative=list(track.cumulative),
        flows=list(track.flows),
        density=track.density,
        parcels=[list(p) for p in track.parcels],
        mass=track.mass,
    )
    return view


def _first_difference(before: Any, after: Any, path: str = "") -> str | None:  # noqa: PLR0911 - one return per case
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            if key not in before or key not in after:
                return f"{path}/{key}: only in {'after' if key not in before else 'before'}"
            found = _first_difference(before[key], after[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(before, list) and isinstance(after, list):
        for i, (a, b) in enumerate(zip(before, after, strict=False)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(before) != len(after):
            return f"{path}: {len(before)} items before, {len(after)} after"
        return None
    floats = isinstance(before, float) and isinstance(after, float)
    both_nan = floats and math.isnan(before) and math.isnan(after)
    if before != after and not both_nan:
        return f"{path}: {before!r} before, {after!r} after"
    return None


def _comparable(captured: dict[str, Any]) -> dict[str, Any]:
    """Through JSON (floats keep every bit: repr round-trips), NaN kept as a string."""
    return json.loads(json.dumps(captured, default=str, allow_nan=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--theft-rate", type=float, default=8.0)
    parser.add_argument("--restore-every", type=int, default=997, help="minutes between hand-overs")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, help="capture the results into this file")
    mode.add_argument("--check", type=Path, help="compare the results with this capture")
    args = parser.parse_args()
    captured = _comparable(capture(args.seed, args.days, args.theft_rate, args.restore_every))
    opened = sum(1 for a in captured["alerts"] if a["status"] == "open")
    summary = f"{len(captured['alerts'])} alerts ({opened} opened)"
    if captured["alerts"] != captured["restored_alerts"]:
        print(f"the restored run differs from the oracle: {summary}", file=sys.stderr)
        sys.exit(1)
    if args.write:
        args.write.write_text(json.dumps(captured, indent=1))
        print(f"wrote {args.write}: {summary}")
        return
    before = json.loads(args.check.read_text())
    found = _first_difference(before, captured)
    if found:
        print(f"DIFFERENT: {found}", file=sys.stderr)
        sys.exit(1)
    print(f"identical: {summary}, calibration and final segment states")


if __name__ == "__main__":
    main()
