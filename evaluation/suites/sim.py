"""``centinela evaluate sim``: the line-aware service on simulated lines, judged against the truth.

Per seed (7, 8, 9 in the full run): simulate one line (train + test days, line pack and clock skew
as the simulator draws them) → its topology → calibrate the segment detector on the training period
(``trainer.line_calibration.calibrate_line``) and train the per-station autoencoder there too
(``trainer.pipeline``) → one bundle with the line → replay the test period into Kafka → the detector
service (``stream.runner.run_detector``) → read its alerts (read_committed) → judge:

- the **service** row (headline): tap incidents against the thefts and leaks of their segment,
  false alarms by cause (the service's station incidents included), meter faults, location and
  volume estimates (``sim_segments``);
- the **autoencoder** row: the same run's station incidents judged as before the line existed
  (``sim_events``: any anomaly incident on one of the tap's two stations);
- the **reference** row: the suite's own offline segment flow balance (``sim_balance``).

``--offline-line`` skips Kafka and the autoencoder: the segment alerts come from the offline oracle
``detector.line.offline.line_alerts`` on the test readings (fast iteration). In the live mode the
oracle runs too, and the report says whether live and offline segment alerts are the same.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detector.errors import CentinelaError
from detector.incidents import IncidentPolicy
from detector.line.monitor import LATENESS_MINUTES, lateness_for
from evaluation.suites import sim_drift, sim_events, sim_leaks, sim_segments
from evaluation.suites.sim_balance import run_reference
from evaluation.suites.sim_live import LiveRun, live, offline_line_alerts
from evaluation.suites.sim_segments import Tally
from evaluation.suites.sim_train import (
    FIT_SEED,
    ModelSize,
    budget_threshold,
    calibrate,
    export,
    line_topology,
    period,
    sensors,
    train_service,
)

if TYPE_CHECKING:
    from detector.line import LineCalibration
    from detector.topology import Topology
    from simulator import SimulationConfig
    from simulator.result import SimulationResult

__all__ = ["FULL", "QUICK", "SEEDS", "SimSize", "budget_threshold", "run"]

log = logging.getLogger(__name__)

SEEDS = (7, 8, 9)
SERVICE = "service"
AUTOENCODER = "autoencoder"
REFERENCE = "reference_flow_balance"
# The simulator's knobs for a line that does not flatter (issue 18 point 6): line pack on, and the
# stations' clocks skewed by up to the simulator's default (45 s); stated here so the run says so.
REALISM: dict[str, Any] = {"line_pack": True, "clock_skew_s": 45.0}
# An autoencoder threshold no reconstruction error reaches: the service runs the line alone.
SWITCHED_OFF_THRESHOLD = 1e30


@dataclass(frozen=True)
class SimSize:
    stations: int
    train_days: float
    test_days: float
    theft_rate: float  # per segment-month; above the default 2 so every size band gets events
    model: ModelSize
    seeds: tuple[int, ...]
    # Seeds (a prefix of ``seeds``) whose autoencoder is trained; on the others the service runs
    # with that first autoencoder switched off (threshold out of reach): see ``_bundle``.
    autoencoder_seeds: int = 99

    @property
    def station_months(self) -> float:
        return self.stations * self.test_days / sim_events.DAYS_PER_MONTH


FULL = SimSize(
    stations=6,
    train_days=60,
    test_days=60,
    theft_rate=8.0,
    model=ModelSize(encoder_units=(16, 8), epochs=4, patience=1),
    seeds=SEEDS,
    # Training the autoencoder on 60 days took 506 s (fit 257 s, scoring the splits 212 s) on the
    # shared 2-core machine: once, on the first seed, for the comparison row; seeds 8 and 9 run the
    # service with the line alone (see ``_bundle``).
    autoencoder_seeds=1,
)
QUICK = SimSize(
    stations=3,
    train_days=3,
    test_days=3,
    theft_rate=30.0,
    model=ModelSize(encoder_units=(8, 4), epochs=2, patience=1),
    seeds=(SEEDS[0],),
)


@dataclass
class SeedRun:
    """What one seed produced: the alerts and what they are judged against."""

    seed: int
    result: SimulationResult
    test_start: int
    alerts: list[dict[str, Any]]  # every alert of the service (or the oracle's, offline)
    scores: list[dict[str, Any]]
    mode: str
    lengths: dict[str, float]
    bundle: dict[str, Any] = field(default_factory=dict)
    replay: dict[str, Any] = field(default_factory=dict)
    live_matches_offline: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    leaks: sim_leaks.LeakRun | None = None  # the seed's leak scenario (``sim_leaks``)


def run(
    out: Path,
    quick: bool = False,
    lang: str = "en",
    bootstrap: str | None = None,
    *,
    offline_line: bool = False,
    seeds: Sequence[int] | None = None,
    size: SimSize | None = None,
) -> dict[str, Any]:
    """Run every seed and write report.json, report.md and plots/ to ``out``."""
    from devtools import broker as local_broker
    from evaluation.suites.sim_report import write_outputs

    chosen = size or (QUICK if quick else FULL)
    if seeds:
        chosen = replace(chosen, seeds=tuple(seeds))
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    runs: list[SeedRun] = []
    first_ae: Path | None = None
    if offline_line:
        broker_text = "offline: no Kafka (--offline-line)"
        for index, seed in enumerate(chosen.seeds):
            _progress(f"seed {seed} ({index + 1} of {len(chosen.seeds)}), offline")
            runs.append(_seed(seed, chosen, out, None, None))
            _progress_eta(started, index + 1, len(chosen.seeds))
    else:
        with local_broker.provide() if bootstrap is None else _GivenBroker(bootstrap) as broker:
            broker_text = broker.describe()
            for index, seed in enumerate(chosen.seeds):
                _progress(f"seed {seed} ({index + 1} of {len(chosen.seeds)})")
                train_ae = index < chosen.autoencoder_seeds
                runs.append(_seed(seed, chosen, out, broker.bootstrap, None if train_ae else first_ae))
                if index == 0:
                    first_ae = out / f"seed-{seed}" / "bundle"
                _progress_eta(started, index + 1, len(chosen.seeds))
    report = build_report(runs, chosen, quick=quick, offline_line=offline_line)
    report["broker"] = broker_text
    report["seconds"] = {
        "total": round(time.perf_counter() - started, 1),
        "by_seed": {str(r.seed): {k: round(v, 1) for k, v in r.seconds.items()} for r in runs},
    }
    write_outputs(report, out, lang=lang)
    _print_summary(report, out)
    return report


class _GivenBroker:
    """An already running cluster, shaped like ``local_broker.provide()``'s broker."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def describe(self) -> str:
        return f"Kafka at {self.bootstrap}"

    def __enter__(self) -> _GivenBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def simulation_config(size: SimSize, seed: int) -> SimulationConfig:
    """The simulated line of one seed: ``train + test`` days, thefts often enough to fill the bands,
    line pack and clock skew on (``REALISM``)."""
    from simulator import SimulationConfig

    config = SimulationConfig(
        stations=size.stations, days=size.train_days + size.test_days, seed=seed, **REALISM
    )
    return config.with_rates(theft_per_segment_month=size.theft_rate)


def realism(config: SimulationConfig) -> dict[str, Any]:
    return {k: getattr(config, k) for k in REALISM}


def _seed(
    seed: int, size: SimSize, out: Path, bootstrap: str | None, switched_off_ae: Path | None
) -> SeedRun:
    """One seed: simulate, calibrate, (train, serve live), collect alerts."""
    from simulator import simulate

    seconds: dict[str, float] = {}
    tick = _stopwatch(seconds)
    result = simulate(simulation_config(size, seed))
    test_start = int(size.train_days * 24 * 60)
    topology = line_topology(result)
    lengths = {s.segment_id: s.length_km for s in topology.segments}
    tick("simulate")
    test_frame = period(result, test_start, test=True)
    # Every sensor the service receives: a row with any empty cell never reaches it (the replay
    # refuses it), so the oracle leaves it out too.
    fields_used = sensors()
    if bootstrap is None:
        calibration = calibrate(result, test_start, topology)
        tick("calibrate")
        alerts = offline_line_alerts(test_frame, topology, calibration, fields_used, "offline-line")
        tick("offline_line")
        leaks = sim_leaks.run(
            result.config, test_start, topology, calibration, fields_used, model_version="offline-line"
        )
        tick("leaks")
        return SeedRun(
            seed, result, test_start, alerts, [], "offline-line", lengths, seconds=seconds, leaks=leaks
        )

    folder = out / f"seed-{seed}"
    bundle_path, calibration = _bundle(
        result, test_start, size, folder, topology=topology, switched_off_ae=switched_off_ae
    )
    tick("train")
    served: LiveRun = live(test_frame, bundle_path, bootstrap)
    tick("live")
    oracle = offline_line_alerts(
        test_frame, topology, calibration, fields_used, str(served.bundle_info["model_version"])
    )
    tick("offline_line")
    version = str(served.bundle_info["model_version"])
    leaks = sim_leaks.run(
        result.config, test_start, topology, calibration, fields_used, model_version=version
    )
    tick("leaks")
    # What was published and what the oracle raised, for anyone checking a difference.
    _write_jsonl(folder / "alerts.jsonl", served.alerts)
    _write_jsonl(folder / "oracle_segment_alerts.jsonl", oracle)
    return SeedRun(
        seed,
        result,
        test_start,
        served.alerts,
        served.scores,
        "live",
        lengths,
        bundle=served.bundle_info | {"autoencoder": "trained" if switched_off_ae is None else "switched off"},
        replay=served.replay,
        live_matches_offline=compare_segment_alerts(
            served.alerts, oracle, _data_end(result), end_minutes=end_minutes(topology)
        ),
        seconds=seconds | {f"live_{k}": v for k, v in served.seconds.items()},
        leaks=leaks,
    )


def _bundle(
    result: SimulationResult,
    test_start: int,
    size: SimSize,
    folder: Path,
    *,
    topology: Topology,
    switched_off_ae: Path | None,
) -> tuple[Path, LineCalibration]:
    """The service's bundle for one seed and its line calibration: the trainer's run with the
    topology, or (``switched_off_ae``) the first seed's autoencoder with a threshold no window
    reaches beside this seed's line, so the service runs the line alone."""
    if switched_off_ae is None:
        trained = train_service(result, test_start, size.model, topology)
        if trained.line is None:
            raise CentinelaError("the trainer returned no line calibration although it was given a topology")
        return export(trained, folder / "bundle"), trained.line.calibration
    calibration = calibrate(result, test_start, topology)
    return _line_only_bundle(switched_off_ae, folder / "bundle", (topology, calibration)), calibration


def _line_only_bundle(source: Path, target: Path, line: tuple[Any, Any]) -> Path:
    """A copy of ``source``'s model with this seed's line and the autoencoder switched off."""
    from detector.bundle import load_bundle, write_bundle
    from detector.onnx_runtime import onnx_scorers

    bundle = load_bundle(source, reconstructor_factory=onnx_scorers(threads=1))
    manifest = bundle.manifest
    onnx = (source / "model.onnx").read_bytes()
    return write_bundle(
        target,
        onnx_model=onnx,
        keras_model_file=None,
        model_version=f"{bundle.model_version}-line-only",
        sensors=bundle.sensors,
        window=bundle.window_spec,
        scalers=bundle.scalers,
        aggregation=manifest.aggregation,
        threshold=SWITCHED_OFF_THRESHOLD,
        calibration={"method": "switched_off", "why": "autoencoder trained on the first seed only"},
        line=line,
        overwrite=True,
    )


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    import orjson

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))


def compare_segment_alerts(
    live_alerts: list[dict[str, Any]],
    oracle: list[dict[str, Any]],
    data_end: datetime | None = None,
    *,
    end_minutes: int | None = None,
) -> dict[str, Any]:
    """Whether the service published the segment alerts the offline oracle raises (same incident,
    status, decision minute and kind).

    ``data_end``: the end of the replayed readings. The oracle flushes its monitor there, deciding the
    last minutes the live service decides only when later readings arrive; oracle alerts of those
    minutes (``end_minutes``: the topology's, ``end_minutes(topology)``; ``END_MINUTES`` for the default
    clock tolerance) are counted apart (``only_offline_at_end``) and do not make a difference.
    """

    def keys(alerts: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
        return {
            (str(a["kind"]), str(a["incident_id"]), str(a["status"]), str(a["window_end"]))
            for a in alerts
            if a.get("kind") in (sim_segments.TAP_KIND, sim_segments.METER_KIND)
        }

    served, expected = keys(live_alerts), keys(oracle)
    only_offline = expected - served
    at_end: set[tuple[str, str, str, str]] = set()
    if data_end is not None:
        tail = data_end - timedelta(minutes=END_MINUTES if end_minutes is None else end_minutes)
        at_end = {k for k in only_offline if sim_events._ts(k[3]) >= tail}
    return {
        "live": len(served),
        "offline": len(expected),
        "only_live": len(served - expected),
        "only_offline": len(only_offline - at_end),
        "only_offline_at_end": len(at_end),
        "same": not (served - expected) and not (only_offline - at_end),
        "first_only_live": [list(k) for k in sorted(served - expected, key=lambda k: k[3])[:5]],
        "first_only_offline": [list(k) for k in sorted(only_offline - at_end, key=lambda k: k[3])[:5]],
    }


# The minutes at the end of the data the oracle's flush decides and the live service does not yet:
# the monitor's lateness and the minute it closes. The lateness follows each line's declared clock
# tolerance; this is the default's.
END_MINUTES = LATENESS_MINUTES + 1


def end_minutes(topology: Topology) -> int:
    """``END_MINUTES`` for ``topology``: its most patient line's lateness, plus the closing minute."""
    return max(lateness_for(line.clock_tolerance_s) for line in topology.lines) + 1


def _data_end(result: SimulationResult) -> datetime:
    return aware(result.times[-1]) + timedelta(minutes=1)


def _stopwatch(seconds: dict[str, float]) -> Callable[[str], None]:
    """``tick(name)``: the time since the last tick goes to ``seconds[name]``, and to stderr."""
    last = [time.perf_counter()]

    def tick(name: str) -> None:
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - last[0]
        _progress(f"  {name} done in {now - last[0]:.0f} s")
        last[0] = now

    return tick


def _progress(line: str) -> None:
    """Progress of a run that takes minutes (stderr: the report and summary stay on stdout)."""
    print(line, file=sys.stderr, flush=True)


def _progress_eta(started: float, done: int, total: int) -> None:
    elapsed = time.perf_counter() - started
    left = elapsed / done * (total - done)
    _progress(f"  {done} of {total} seeds in {elapsed / 60:.1f} min; about {left / 60:.0f} min left")


# -- truth ---------------------------------------------------------------------------------------
def truth_events(result: SimulationResult) -> list[sim_events.TruthEvent]:
    """The simulator's events as events.csv lists them (segment ids, positions, true volumes),
    with aware datetimes and the true mean extraction rate."""
    frame = result.events_frame()
    by_id = {event.event_id: event for event in result.events}
    out: list[sim_events.TruthEvent] = []
    for row in frame.to_dict("records"):
        event = by_id[str(row["event_id"])]
        labelled = row["event_type"] in ("theft", "leak")
        rate = None
        if labelled and event.segment is not None and event.end > event.start:
            rate = float(result.extraction_m3h[event.start : event.end, event.segment].mean())
        position = float(row["position"]) if labelled and np.isfinite(row["position"]) else None
        out.append(
            sim_events.TruthEvent(
                event_id=str(row["event_id"]),
                event_type=str(row["event_type"]),
                subtype=str(row["subtype"]),
                stations=tuple(str(row["stations"]).split()),
                start=row["start"].to_pydatetime(),
                end=row["end"].to_pydatetime(),
                magnitude=float(row["magnitude"]) if labelled else None,
                segment=event.segment,
                sensor=str(row["sensor"]) or None,
                volume_m3=float(row["volume_m3"]) if labelled else None,
                true_rate_m3h=rate,
                segment_id=str(row["segment"]) or None,
                position=position,
            )
        )
    return out


def aware(value: Any) -> datetime:
    stamp: datetime = np.datetime64(value, "us").astype(datetime)
    return stamp.replace(tzinfo=UTC)


def test_events(run: SeedRun) -> list[sim_events.TruthEvent]:
    """Events that start in the test period (those under way at its start were not replayed whole)."""
    begin = aware(run.result.times[0]) + timedelta(minutes=run.test_start)
    return [e for e in truth_events(run.result) if e.start >= begin]


def window_level(result: SimulationResult, scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision/recall/F1/ROC-AUC/AP of the service's score records against window labels."""
    from trainer.metrics import window_metrics

    if not scores:
        return {"windows": 0}
    start = aware(result.times[0])
    column = {sid: j for j, sid in enumerate(result.station_ids)}
    # Prefix sums of labels per station: a window [end - 30 min, end) is positive if any minute is.
    cumulative = np.vstack([np.zeros((1, result.label.shape[1])), np.cumsum(result.label, axis=0)])
    values, labels = [], []
    threshold = float(scores[0]["threshold"])
    for record in scores:
        end = sim_events._ts(record["window_end"])
        last = int((end - start).total_seconds() // 60)
        first = max(0, last - 30)
        j = column[str(record["station_id"])]
        values.append(float(record["score"]))
        labels.append(1 if cumulative[last, j] - cumulative[first, j] > 0 else 0)
    metrics = window_metrics(np.asarray(values), np.asarray(labels, dtype=np.int8), threshold)
    keys = ("precision", "recall", "f1", "roc_auc", "average_precision", "threshold", "windows", "positives")
    return {k: metrics[k] for k in keys}


# -- the report ----------------------------------------------------------------------------------
def service_tally(run: SeedRun, size: SimSize) -> Tally:
    events = test_events(run)
    joined = sim_segments.join_segments(
        events,
        sim_segments.fold_segment_incidents(run.alerts),
        sim_segments.fold_station_incidents(run.alerts),
        run.lengths,
    )
    return Tally.of(joined, size.station_months, autoencoder=run.bundle.get("autoencoder") == "trained")


def station_row(run: SeedRun, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """A per-station detector's incidents judged as before the line existed (``sim_events``)."""
    events = test_events(run)
    data_end = aware(run.result.times[0]) + timedelta(minutes=len(run.result.times))
    station_alerts = [a for a in alerts if a.get("kind") in ("incident", sim_events.GAP_KIND)]
    joined = sim_events.join(events, sim_events.fold_incidents(station_alerts), data_end)
    return {"events": joined.events, "false_alarms": joined.false_alarms}


def station_figures(rows: list[dict[str, Any]], station_months: float) -> dict[str, Any]:
    events = [e for r in rows for e in r["events"]]
    false_alarms = [f for r in rows for f in r["false_alarms"]]
    causes = {c: sum(1 for f in false_alarms if f["cause"] == c) for c in sim_events.FALSE_ALARM_CAUSES}
    normal = sum(causes[c] for c in sim_segments.NORMAL_CAUSES)
    bands = sim_events.band_figures(events)
    rate_2pct, n_2pct = sim_events.rate_at_least(events, 0.02)
    caught_2pct = [e for e in events if e["event_type"] == "theft" and (e["magnitude"] or 0) >= 0.02]
    return {
        "detection_rate_by_band": bands["rate"],
        "median_minutes_to_alarm_by_band": bands["median"],
        "p90_minutes_to_alarm_by_band": bands["p90"],
        "events_by_band": bands["counts"],
        "taps_ge_2pct_detected": rate_2pct,
        "taps_ge_2pct": n_2pct,
        "median_minutes_to_alarm_ge_2pct": sim_events.median_delay(caught_2pct),
        "smallest_tap_detected_90pct": sim_events.smallest_detected(events),
        "false_alarms_per_station_month": normal / station_months if station_months else None,
        "false_alarms_per_station_month_all": len(false_alarms) / station_months if station_months else None,
        "false_alarms_by_cause": causes,
    }


def reference_row(run: SeedRun) -> dict[str, Any]:
    alerts, threshold = run_reference(run.result, run.test_start)
    return station_row(run, alerts) | {"threshold_m3h": threshold}


def build_report(runs: list[SeedRun], size: SimSize, *, quick: bool, offline_line: bool) -> dict[str, Any]:
    """report.json: the service's pooled figures at the top (the keys ``centinela results`` reads),
    per seed below, and the comparison rows."""
    tallies = {run.seed: service_tally(run, size) for run in runs}
    pooled = sim_segments.figures(Tally.pooled(list(tallies.values())))
    per_seed: dict[str, Any] = {}
    for run in runs:
        figures = sim_segments.figures(tallies[run.seed])
        per_seed[str(run.seed)] = {
            k: figures[k]
            for k in (
                "thefts",
                "targets",
                "detection_rate_by_band",
                "events_by_band",
                "events_by_volume",
                "false_alarms_per_station_month",
                "false_alarms_per_station_month_all",
                "false_alarms_by_cause",
                "meter_faults",
                "leaks",
            )
        } | {
            "mode": run.mode,
            "bundle": run.bundle,
            "replay": run.replay,
            "live_matches_offline": run.live_matches_offline,
            "realism": realism(run.result.config),
            "window_level": window_level(run.result, run.scores),
        }

    ae_runs = [r for r in runs if r.mode == "live" and r.bundle.get("autoencoder") == "trained"]
    rows: dict[str, Any] = {SERVICE: _row_summary(pooled)}
    if ae_runs:
        rows[AUTOENCODER] = station_figures(
            [station_row(r, r.alerts) for r in ae_runs], size.station_months * len(ae_runs)
        ) | {"seeds": [r.seed for r in ae_runs]}
    references = [reference_row(r) for r in runs]
    reference = station_figures(references, size.station_months * len(runs)) | {
        "threshold_m3h": {str(r.seed): ref["threshold_m3h"] for r, ref in zip(runs, references, strict=True)},
        "seeds": [r.seed for r in runs],
    }
    rows[REFERENCE] = reference
    events = [e | {"seed": seed} for seed, t in tallies.items() for e in t.events]
    false_alarms = [f | {"seed": seed} for seed, t in tallies.items() for f in t.false_alarms]
    report: dict[str, Any] = {
        "suite": "sim",
        "quick": quick,
        "mode": "offline-line" if offline_line else "live",
        "path": (
            "offline: detector.line.offline.line_alerts on the test readings (no Kafka, no autoencoder)"
            if offline_line
            else "live: replay → Kafka → centinela detector service (line + autoencoder) → alerts topic"
        ),
        "seeds": [r.seed for r in runs],
        "sizes": {
            "stations": size.stations,
            "train_days": size.train_days,
            "test_days": size.test_days,
            "station_months_per_seed": size.station_months,
            "theft_per_segment_month": size.theft_rate,
            "model_units": list(size.model.encoder_units),
            "epochs": size.model.epochs,
            "fit_seed": FIT_SEED,
            "autoencoder_seeds": [r.seed for r in ae_runs],
        },
        "operating_point": "line calibration (trainer's budget) + autoencoder at the alarm budget",
    }
    report |= pooled
    report["smallest_tap_detected_90pct"] = sim_events.smallest_detected(events)
    report["detection_rate_at_least_2pct"] = pooled["targets"]["taps_ge_2pct_detected"]["value"]
    report["median_minutes_to_alarm"] = pooled["targets"]["median_minutes_to_alarm_ge_2pct"]["value"]
    report["per_seed"] = per_seed
    report["rows"] = rows
    report["reference_flow_balance"] = reference  # the key ``centinela results`` reads
    report["events"] = events
    report["false_alarms"] = false_alarms
    report["meter_fault_detail"] = [m | {"seed": s} for s, t in tallies.items() for m in t.meter_faults]
    drift = {
        str(run.seed): sim_drift.drift_figures(
            test_events(run),
            run.alerts,
            {e["event_id"]: bool(e["caught"]) for e in tallies[run.seed].events},
            IncidentPolicy().max_length,
        )
        for run in runs
    }
    report["drift"] = sim_drift.pool(list(drift.values()))
    for seed, figures in drift.items():
        per_seed[seed]["drift"] = figures
    scenarios = {r.seed: r.leaks for r in runs if r.leaks is not None}
    if scenarios:
        # The main runs have (almost) no leaks: their own scenario answers (``sim_leaks``).
        report["leaks"] = sim_leaks.figures(list(scenarios.values()), list(scenarios))
        for leak_seed, leaks in scenarios.items():
            per_seed[str(leak_seed)]["leaks"] = sim_leaks.figures([leaks], [leak_seed])
    return report


def _row_summary(figures: dict[str, Any]) -> dict[str, Any]:
    targets = figures["targets"]
    return {
        "detection_rate_by_band": figures["detection_rate_by_band"],
        "median_minutes_to_alarm_by_band": figures["median_minutes_to_alarm_by_band"],
        "p90_minutes_to_alarm_by_band": figures["p90_minutes_to_alarm_by_band"],
        "events_by_band": figures["events_by_band"],
        "taps_ge_2pct_detected": targets["taps_ge_2pct_detected"]["value"],
        "median_minutes_to_alarm_ge_2pct": targets["median_minutes_to_alarm_ge_2pct"]["value"],
        "false_alarms_per_station_month": figures["false_alarms_per_station_month"],
        "false_alarms_per_station_month_all": figures["false_alarms_per_station_month_all"],
    }


def _print_summary(report: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sim suite ({report['mode']}, seeds {report['seeds']}): thefts by size band")
    for column in ("band, % of flow", "thefts", "caught", "rate", "median min", "p90 min"):
        table.add_column(column)
    for band, counts in report["events_by_band"].items():
        rate = report["detection_rate_by_band"][band]
        med = report["median_minutes_to_alarm_by_band"][band]
        p90 = report["p90_minutes_to_alarm_by_band"][band]
        table.add_row(
            band,
            str(counts["events"]),
            str(counts["caught"]),
            "—" if rate is None else f"{rate:.0%}",
            "—" if med is None else f"{med:.0f}",
            "—" if p90 is None else f"{p90:.0f}",
        )
    console = Console()
    console.print(table)
    for key, target in report["targets"].items():
        value = target["value"]
        shown = "—" if value is None else f"{value:.3g}"
        console.print(
            f"{key}: {shown} (target {target['target']:g}, {'met' if target['met'] else 'NOT met'})"
        )
    console.print(f"written {out / 'report.json'}, {out / 'report.md'}, {out / 'plots'}")
