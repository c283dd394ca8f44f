"""Offline study of the segment detector: simulate, calibrate on days 0-60, test on 60-120.

    PYTHONPATH=. python scripts/line_study.py --seeds 1001 1002 1003 --variants windows cstep

Per variant: detection rate and minutes to alarm per tap band (% of flow) and per extracted
volume, taps >= 2 % lasting >= 30 min, false alarms per station-month in normal operation (and by
cause), location and volume errors, leaks. A tap counts as caught when a tap incident on its
segment opens in (start, end + 60 min]. Tune only on seeds 1001-1005; 7, 8, 9 are for evaluation.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from detector.incidents import Alert
from detector.line.calibration import DEFAULT_WINDOWS
from detector.line.offline import line_alerts
from detector.topology import Topology
from simulator import SimulationConfig, SimulationResult, simulate
from trainer.line_calibration import calibrate_line

BANDS = ((0.005, 0.01, "0.5-1"), (0.01, 0.02, "1-2"), (0.02, 0.05, "2-5"), (0.05, 0.151, "5-15"))
VOLUMES = ((0.0, 4.0, "<4"), (4.0, 8.0, "4-8"), (8.0, math.inf, ">=8"))
GRACE = timedelta(minutes=60)


def topology_of(result: SimulationResult) -> Topology:
    """The simulated line as a topology (the simulator will write this file itself)."""
    write = getattr(result, "topology", None)
    if callable(write):
        topology = write()
        if isinstance(topology, Topology):
            return topology
    line, ids = result.line, result.station_ids
    return Topology.from_dict(
        {
            "line": [
                {
                    "id": "L1",
                    "station": [{"id": s, "tank_area_m2": float(line.tank_area)} for s in ids],
                    "segment": [
                        {
                            "upstream": ids[j],
                            "downstream": ids[j + 1],
                            "length_km": float(line.segment_km[j]),
                            "inner_diameter_m": float(result.config.pipe_diameter_m),
                        }
                        for j in range(len(ids) - 1)
                    ],
                }
            ]
        }
    )


def readings(frame: pd.DataFrame, fields: list[str]) -> Iterator[tuple[str, datetime, Mapping[str, float]]]:
    stamps = list(frame["timestamp"].dt.to_pydatetime())
    stations = frame["station_id"].astype(str).to_numpy()
    columns = [frame[name].to_numpy(dtype=np.float64) for name in fields]
    for i in range(len(frame)):
        yield stations[i], stamps[i], {name: column[i] for name, column in zip(fields, columns, strict=True)}


@functools.lru_cache(maxsize=1)
def simulated(seed: int, days: float, theft_rate: float) -> SimulationResult:
    """One seed's line, simulated once for every variant."""
    config = SimulationConfig(stations=6, days=days, seed=seed).with_rates(theft_per_segment_month=theft_rate)
    return simulate(config)


def run_seed(seed: int, days: float, variant: str, theft_rate: float) -> dict[str, Any]:
    started = time.perf_counter()
    result = simulated(seed, days, theft_rate)
    config = result.config
    topology = topology_of(result)
    frame = result.frame
    split = pd.Timestamp(config.start) + pd.Timedelta(days=days / 2)
    train = frame[frame["timestamp"] < split].reset_index(drop=True)
    test = frame[frame["timestamp"] >= split].reset_index(drop=True)
    t0 = time.perf_counter()
    calibration = calibrate_line(train, topology, exclude=train["label"] == 1, **variant_options(variant))
    t_cal = time.perf_counter() - t0
    fields = sorted(topology.required_sensors())
    t0 = time.perf_counter()
    alerts = line_alerts(readings(test, fields), topology, calibration, model_version="study")
    t_test = time.perf_counter() - t0
    scored = score(result, topology, alerts, split)
    scored["seconds"] = {
        "total": round(time.perf_counter() - started, 1),
        "calibrate": round(t_cal, 1),
        "test": round(t_test, 1),
        "us_per_reading": round(t_test / max(len(test), 1) * 1e6, 1),
    }
    scored["calibration"] = {k: v for k, v in calibration.record.items() if k != "segments"}
    scored["limits"] = {k: round(s.limit, 2) for k, s in calibration.segments.items()}
    scored["largest_peaks"] = {
        k: (v.get("largest_peak"), v.get("largest_peak_at"), v.get("limit_rule"))
        for k, v in calibration.record["segments"].items()
    }
    return scored


def variant_options(variant: str) -> dict[str, Any]:
    """``calibrate_line`` options of a variant.

    ``windows`` (the balance alone), ``cusum``, ``fused`` (the drop against the offset, weight 1,
    cap 4, no gate), ``step[:w=W][:cap=C][:gate=G][:share=S]`` (the local pressure step; defaults
    w=1, cap=20, gate=1, share=0.3 of the budget; ``long=W1+W2`` appends balance windows of W1, W2
    minutes) and ``cstep[...]`` (the same with the step confirmed by the drop against the slow
    offset: the default calibration).
    """
    name, *params = variant.split(":")
    if name in ("windows", "cusum") and not params:
        return {"method": name, "pressure_weight": 0.0}
    if name == "fused" and not params:
        return {
            "pressure_weight": 1.0,
            "pressure_evidence": "drop",
            "pressure_cap": 4.0,
            "pressure_gate": -math.inf,
        }
    if name in ("step", "cstep"):
        values = {"w": 1.0, "cap": 20.0, "gate": 1.0, "share": 0.3}
        windows = DEFAULT_WINDOWS
        for param in params:
            key, _, value = param.partition("=")
            if key == "long":  # longer balance windows appended, e.g. long=320+640
                windows = DEFAULT_WINDOWS + tuple(int(w) for w in value.split("+"))
                continue
            if key not in values:
                raise SystemExit(f"variant {variant!r}: unknown parameter {key!r}")
            values[key] = float(value)
        return {
            "windows": windows,
            "pressure_weight": values["w"],
            "pressure_evidence": "step" if name == "step" else "confirmed_step",
            "pressure_cap": values["cap"],
            "pressure_gate": values["gate"],
            "pressure_budget_share": values["share"],
        }
    raise SystemExit(
        f"variant {variant!r} is not windows, cusum, fused or step[:w=..][:cap=..][:gate=..][:share=..]"
    )


def score(
    result: SimulationResult, topology: Topology, alerts: list[Alert], split: pd.Timestamp
) -> dict[str, Any]:
    events = result.events_frame()
    lengths = {s.segment_id: s.length_km for s in topology.segments}
    opens = [a for a in alerts if a.kind == "tap" and a.status == "open"]
    last: dict[str, Alert] = {}
    for alert in alerts:
        if alert.kind == "tap":
            last[alert.incident_id] = alert
    taps = events[(events["event_type"].isin(["theft", "leak"])) & (events["start"] >= split)]
    matched: set[str] = set()
    rows = []
    for event in taps.itertuples():
        hits = [
            a
            for a in opens
            if a.segment is not None
            and a.segment.segment_id == event.segment
            and event.start < a.window_end <= event.end + GRACE
        ]
        first = min(hits, key=lambda a: a.window_end) if hits else None
        row: dict[str, Any] = {
            "type": event.event_type,
            "fraction": float(event.magnitude),
            "minutes": int(event.minutes),
            "volume": float(event.volume_m3),
            "caught": first is not None,
        }
        if first is not None:
            matched.update(a.incident_id for a in hits)
            row["delay"] = (first.window_end - event.start).total_seconds() / 60.0
            final = last[first.incident_id]
            if final.estimate is not None:
                row["volume_est"] = final.estimate.volume_m3
                if final.estimate.location_km is not None and not math.isnan(float(event.position)):
                    true_km = float(event.position) * lengths[event.segment]
                    row["location_err_pct"] = (
                        abs(final.estimate.location_km - true_km) / lengths[event.segment] * 100
                    )
        rows.append(row)
    false = [a for a in opens if a.incident_id not in matched]
    causes: dict[str, int] = {}
    for alert in false:
        causes[cause_of(result, alert)] = causes.get(cause_of(result, alert), 0) + 1
    months = (result.times[-1] - np.datetime64(split.tz_convert(None))) / np.timedelta64(30, "D")
    station_months = float(months) * len(result.station_ids)
    normal_false = sum(n for c, n in causes.items() if c != "sensor_fault")
    faults = [a for a in alerts if a.kind == "meter_fault" and a.status == "open"]
    return {
        "taps": rows,
        "false_alarms": len(false),
        "false_normal": normal_false,
        "station_months": station_months,
        "causes": causes,
        "meter_faults": len(faults),
    }


def cause_of(result: SimulationResult, alert: Alert) -> str:
    """The event (if any) on the alert's stations in the two hours before it opened."""
    if alert.segment is None:
        return "?"
    ids = list(result.station_ids)
    end = np.datetime64(alert.window_end.astimezone(UTC).replace(tzinfo=None), "ns")
    t = int((end - result.times[0]) / np.timedelta64(1, "m"))
    cols = [ids.index(alert.segment.upstream), ids.index(alert.segment.downstream)]
    window = result.event_index[max(t - 120, 0) : t + 1][:, cols].reshape(-1)
    found = [result.events[i] for i in sorted(set(window.tolist())) if i >= 0]
    kinds = [e.event_type if e.event_type != "transient" else e.subtype for e in found]
    for preferred in (
        "theft",
        "leak",
        "sensor_fault",
        "pump_stop",
        "maintenance",
        "setpoint_change",
        "valve_manoeuvre",
        "batch_change",
    ):
        if preferred in kinds:
            return preferred
    return "none"


def summarise(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [row for seed in seeds for row in seed["taps"]]
    thefts = [r for r in rows if r["type"] == "theft"]
    out: dict[str, Any] = {"thefts": len(thefts)}
    for low, high, name in BANDS:
        out[f"band {name}"] = _rate(r for r in thefts if low <= r["fraction"] < high)
    for low, high, name in VOLUMES:
        out[f"volume {name}"] = _rate(r for r in thefts if low <= r["volume"] < high)
    big = [r for r in thefts if r["fraction"] >= 0.02]
    out[">=2%"] = _rate(big)
    out[">=2% & >=30min"] = _rate(r for r in big if r["minutes"] >= 30)
    out["leaks"] = _rate(r for r in rows if r["type"] == "leak")
    months = sum(seed["station_months"] for seed in seeds)
    out["false/station-month (normal)"] = round(sum(seed["false_normal"] for seed in seeds) / months, 3)
    out["false/station-month (all)"] = round(sum(seed["false_alarms"] for seed in seeds) / months, 3)
    causes: dict[str, int] = {}
    for seed in seeds:
        for cause, n in seed["causes"].items():
            causes[cause] = causes.get(cause, 0) + n
    out["false by cause"] = causes
    loc = [r["location_err_pct"] for r in thefts if "location_err_pct" in r]
    out["location median err % of segment"] = round(float(np.median(loc)), 1) if loc else None
    vol = [
        abs(r["volume_est"] - r["volume"]) / r["volume"] * 100
        for r in thefts
        if "volume_est" in r and r["volume"] > 0
    ]
    out["volume median abs err %"] = round(float(np.median(vol)), 1) if vol else None
    out["us per reading (test)"] = round(float(np.median([s["seconds"]["us_per_reading"] for s in seeds])), 1)
    return out


def _rate(rows: Any) -> str:
    rows = list(rows)
    if not rows:
        return "-"
    caught = [r for r in rows if r["caught"]]
    delays = [r["delay"] for r in caught]
    text = f"{len(caught)}/{len(rows)} = {100 * len(caught) / len(rows):.0f}%"
    if delays:
        text += f", median {np.median(delays):.0f} min, p90 {np.quantile(delays, 0.9):.0f}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1001, 1002, 1003])
    parser.add_argument("--days", type=float, default=120.0)
    parser.add_argument("--theft-rate", type=float, default=8.0)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["windows", "cstep"],
        help="windows, cusum, fused, step or cstep[:w=W][:cap=C][:gate=G][:share=S] (cstep: the default)",
    )
    parser.add_argument("--json", help="write the per-seed results here")
    args = parser.parse_args()
    for variant in args.variants:
        variant_options(variant)
    everything: dict[str, Any] = {}
    per_variant: dict[str, list[dict[str, Any]]] = {variant: [] for variant in args.variants}
    for seed in args.seeds:  # seed-major: each line is simulated once for all variants
        for variant in args.variants:
            per_variant[variant].append(run_seed(seed, args.days, variant, args.theft_rate))
    for variant in args.variants:
        seeds = per_variant[variant]
        summary = summarise(seeds)
        everything[variant] = {"summary": summary, "seeds": seeds}
        print(
            f"\n== {variant} (seeds {' '.join(map(str, args.seeds))}, {args.days:g} days, half calibration)"
        )
        for key, value in summary.items():
            print(f"  {key:36s} {value}")
        for seed, data in zip(args.seeds, seeds, strict=True):
            print(f"  seed {seed}: limits {data['limits']} seconds {data['seconds']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(everything, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
