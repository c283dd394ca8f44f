"""``centinela evaluate sim``: an API RP 1130-style report on simulated data, through the live code path.

simulate a training period → train a bundle (``trainer``) → simulate a separate test period →
replay it into Kafka (``replay.replay_frame``) → the detector service (``stream.runner.run_detector``,
in a thread, exactly once) → read the alerts and score topics (read_committed) → join the alerts
with the labelled events (``sim_events``) and estimate each caught theft from the flow balance
(``sim_estimate``). Window-level metrics come from the service's score records.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from centinela.suites import sim_events
from centinela.suites.sim_balance import run_reference
from centinela.suites.sim_estimate import estimate_extraction
from detector.errors import CentinelaError

if TYPE_CHECKING:
    from replay.simulator.result import SimulationResult

log = logging.getLogger(__name__)

SEED = 7
FIT_SEED = 42
TARGET_DETECTION_AT_2PCT = 0.95
TARGET_MEDIAN_MINUTES = 15.0
TARGET_FALSE_PER_STATION_MONTH = 1.0
# Windows this soon after a labelled window still carry the tap's after-effect (the downstream tank
# refills for about an hour): the alarm-budget threshold ignores them.
RECOVERY = timedelta(minutes=90)
TRAINED = "trained_threshold"
BUDGET = "alarm_budget"


@dataclass(frozen=True)
class SimSize:
    stations: int
    train_days: float
    test_days: float
    theft_rate: float  # per segment-month; above the default 2 so every size band gets events
    encoder_units: tuple[int, ...]
    epochs: int
    patience: int


FULL = SimSize(
    stations=6, train_days=30, test_days=30, theft_rate=8.0, encoder_units=(32, 16), epochs=8, patience=2
)
QUICK = SimSize(
    stations=3, train_days=3, test_days=3, theft_rate=30.0, encoder_units=(8, 4), epochs=2, patience=1
)


def run(out: Path, quick: bool = False, lang: str = "en", bootstrap: str | None = None) -> dict[str, Any]:
    """Run the whole chain and write report.json, report.md and plots/ to ``out``."""
    from centinela import local_broker
    from centinela.suites.sim_report import write_outputs

    size = QUICK if quick else FULL
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    out.mkdir(parents=True, exist_ok=True)
    tick = _stopwatch(seconds)

    # One line, one run: the model trains on its first weeks and is tested on the weeks after.
    result = _simulate(size)
    test_start = int(size.train_days * 24 * 60)
    tick("simulate")
    bundles = _train_bundles(result, test_start, size, out)
    tick("train")

    live: dict[str, LiveRun] = {}
    if bootstrap is not None:
        broker_text = f"Kafka at {bootstrap}"
        for name, path in bundles.items():
            live[name] = _live(result, test_start, path, bootstrap)
    else:
        with local_broker.provide() as broker:
            broker_text = broker.describe()
            for name, path in bundles.items():
                live[name] = _live(result, test_start, path, broker.bootstrap)
    tick("live")

    points = {name: build_report(result, test_start, run, size) for name, run in live.items()}
    reference_alerts, reference_threshold = run_reference(result, test_start)
    reference_run = LiveRun(
        alerts=reference_alerts,
        scores=[],
        replay={},
        bundle_info={"threshold": reference_threshold, "model_version": "flow-balance-reference"},
        seconds={},
    )
    reference = build_report(result, test_start, reference_run, size)
    tick("reference")
    report: dict[str, Any] = {"suite": "sim", "quick": quick, "operating_point": BUDGET}
    report |= points[BUDGET]
    report["operating_points"] = {name: _headline(point) for name, point in points.items()}
    report["bundles"] = {name: run.bundle_info for name, run in live.items()}
    report["reference_flow_balance"] = _headline(reference) | {
        "path": "offline: the suite's own segment flow balance (not the service), same incident tracker",
        "threshold_m3h": reference_threshold,
        "estimation": reference["estimation"],
        "events": [
            {k: e[k] for k in ("event_id", "magnitude", "caught", "minutes_to_alarm", "estimate")}
            for e in reference["events"]
        ],
    }
    report["broker"] = broker_text
    seconds["total"] = time.perf_counter() - started
    report["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    write_outputs(report, out, lang=lang, result=result)
    _print_summary(report, out)
    return report


HEADLINE = (
    "threshold",
    "detection_rate_by_band",
    "median_minutes_to_alarm_by_band",
    "p90_minutes_to_alarm_by_band",
    "false_alarms_per_station_month",
    "false_alarms_per_station_month_all",
    "smallest_tap_detected_90pct",
    "detection_rate_at_least_2pct",
    "median_minutes_to_alarm",
    "targets",
    "window_level",
    "events_by_band",
    "false_alarms_by_cause",
)


def _headline(point: dict[str, Any]) -> dict[str, Any]:
    return {key: point[key] for key in HEADLINE}


def _stopwatch(seconds: dict[str, float]) -> Callable[[str], None]:
    last = [time.perf_counter()]

    def tick(name: str) -> None:
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - last[0]
        last[0] = now

    return tick


def _simulate(size: SimSize) -> SimulationResult:
    from replay.simulator import SimulationConfig, simulate

    config = SimulationConfig(stations=size.stations, days=size.train_days + size.test_days, seed=SEED)
    return simulate(config.with_rates(theft_per_segment_month=size.theft_rate))


def sensors() -> tuple[str, ...]:
    from replay.simulator import SENSORS

    return tuple(SENSORS)


def _period(result: SimulationResult, test_start: int, test: bool) -> Any:
    frame = result.frame
    boundary = result.frame["timestamp"].iloc[0] + timedelta(minutes=test_start)
    return frame[frame["timestamp"] >= boundary] if test else frame[frame["timestamp"] < boundary]


def _train_bundles(result: SimulationResult, test_start: int, size: SimSize, out: Path) -> dict[str, Path]:
    """Train with the trainer's own pipeline on the training period; write the bundle twice:
    with the trainer's threshold, and with the alarm-budget threshold (see ``budget_threshold``)."""
    import dataclasses

    from trainer.export import export_bundle
    from trainer.model import FitConfig, ModelConfig
    from trainer.pipeline import AUTOENCODER, TrainOptions, run_training

    columns = ["timestamp", "station_id", *sensors(), "label"]
    # The trainer refuses empty cells: rows with a dropped-out sensor are left out (a gap, as live).
    frame = _period(result, test_start, test=False)[columns].dropna()
    decoder = tuple(reversed(size.encoder_units))
    model = ModelConfig(encoder_units=size.encoder_units, decoder_units=decoder)
    fit = FitConfig(epochs=size.epochs, patience=size.patience, seed=FIT_SEED, batch_size=64)
    with tempfile.TemporaryDirectory(prefix="centinela-sim-") as tmp:
        csv = Path(tmp) / "train.csv"
        frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(csv, index=False)
        trained = run_training(TrainOptions(data=csv, sensors=sensors(), model=model, fit=fit))
    paths = {TRAINED: export_bundle(trained, out / "bundle")}
    ae = trained.models[AUTOENCODER]
    validation = trained.prepared["validation"]
    threshold = budget_threshold(
        ae.scores["validation"], validation.labels, validation.station_ids, validation.ends
    )
    record = dataclasses.replace(ae.calibration, threshold=threshold, method=BUDGET, percentile=None)
    trained.models[AUTOENCODER] = dataclasses.replace(ae, calibration=record)
    paths[BUDGET] = export_bundle(trained, out / "bundle-alarm-budget")
    return paths


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


@dataclass
class LiveRun:
    alerts: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    replay: dict[str, Any]
    bundle_info: dict[str, Any]
    seconds: dict[str, float]


def _live(result: SimulationResult, test_start: int, bundle_path: Path, bootstrap: str) -> LiveRun:
    """Replay the test period into fresh topics, run the detector until it committed everything."""
    from prometheus_client import CollectorRegistry

    from detector.bundle import load_bundle
    from replay.csv_source import SourceOptions
    from replay.producer import ReplayOptions, ensure_topic, replay_frame
    from stream.group_progress import committed_to_end
    from stream.runner import run_detector
    from stream.settings import Settings

    bundle = load_bundle(bundle_path, threads=1)
    run_id = uuid.uuid4().hex[:8]
    topics = {name: f"centinela.eval-sim.{run_id}.{name}" for name in ("readings", "alerts", "dlq", "scores")}
    client = {"bootstrap.servers": bootstrap}
    for name, topic in topics.items():
        if name != "readings":
            ensure_topic(client, topic, 1)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    frame = _period(result, test_start, test=True)[["timestamp", "station_id", *bundle.sensors]]
    options = ReplayOptions(source=SourceOptions(sensors=tuple(bundle.sensors)), partitions=3)
    summary = replay_frame(frame, topics["readings"], options, client)
    seconds["replay"] = time.perf_counter() - started

    group = f"centinela-eval-sim-{run_id}"
    settings = Settings.model_validate(
        {
            "kafka": {"bootstrap_servers": bootstrap},
            "topics": topics,
            "group_id": group,
            "instance_id": f"eval-sim-{run_id}",
            "bundle_path": bundle_path,
            "metrics_enabled": False,
            "idle_timeout_s": 1e6,  # replay runs faster than real time: silence is not a gap here
            "watch_bundle": False,
            "transaction_timeout_s": 30,
            "scoring_threads": 1,
        }
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_detector(settings, stop=stop, registry=CollectorRegistry())
        except BaseException as error:  # reported below, in the caller's thread
            errors.append(error)

    detecting = time.perf_counter()
    thread = threading.Thread(target=target, name="detector", daemon=True)
    thread.start()
    try:
        _wait(lambda: committed_to_end(bootstrap, group, topics["readings"]) or bool(errors), 600, thread)
    finally:
        stop.set()
        thread.join(60)
    if errors:
        raise CentinelaError(f"the detector failed during the sim suite: {errors[0]}") from errors[0]
    seconds["detect"] = time.perf_counter() - detecting
    alerts = _read_topic(bootstrap, topics["alerts"])
    scores = _read_topic(bootstrap, topics["scores"])
    dead = _read_topic(bootstrap, topics["dlq"], settle_s=0.3)
    _delete_topics(client, list(topics.values()))
    info = {
        "model_version": bundle.model_version,
        "threshold": bundle.threshold,
        "sensors": list(bundle.sensors),
        "aggregation": bundle.manifest.aggregation,
        "window_minutes": bundle.window_spec.length.total_seconds() / 60,
        "step_minutes": bundle.window_spec.step.total_seconds() / 60,
        "training": {
            k: bundle.manifest.training.get(k)
            for k in ("split", "epochs_run", "best_epoch", "test")
            if bundle.manifest.training
        },
    }
    replay_info = summary.to_dict()
    replay_info["dead_letters"] = len(dead)
    return LiveRun(alerts, scores, replay_info, info, seconds)


def _wait(condition: Callable[[], bool], timeout_s: float, thread: threading.Thread) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if not thread.is_alive():
            raise CentinelaError("the detector stopped before it processed every reading")
        time.sleep(0.5)
    raise CentinelaError(f"the detector did not process every reading within {timeout_s:g} s")


def _read_topic(
    bootstrap: str, topic: str, settle_s: float = 1.0, timeout_s: float = 120.0
) -> list[dict[str, Any]]:
    """Every committed message of ``topic`` (read_committed), decoded."""
    import orjson
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"centinela-eval-sim-reader-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < settle_s:
            batch = [m for m in consumer.consume(5000, 0.2) if m.error() is None]
            if batch:
                for message in batch:
                    value = message.value()
                    try:
                        out.append(orjson.loads(value) if value else {})
                    except orjson.JSONDecodeError:
                        out.append({"raw": True})  # dead letters keep the original bytes
                quiet_since = time.monotonic()
        return out
    finally:
        consumer.close()


def _delete_topics(client: dict[str, str], topics: list[str]) -> None:
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    admin = AdminClient({"log_level": 4, **client})
    for future in admin.delete_topics(topics, operation_timeout=15).values():
        try:
            future.result(timeout=15)
        except Exception as error:  # a leftover topic is harmless; say so and go on
            log.warning("could not delete topic: %s", error)


# -- the report ----------------------------------------------------------------------------------
def truth_events(result: SimulationResult) -> list[sim_events.TruthEvent]:
    """The simulator's events as aware datetimes and station ids, with true rate and volume."""
    start = _aware(result.times[0])
    ids = list(result.station_ids)
    out: list[sim_events.TruthEvent] = []
    for event in result.events:
        labelled = event.event_type in ("theft", "leak")
        rate = None
        if labelled and event.segment is not None and event.end > event.start:
            rate = float(result.extraction_m3h[event.start : event.end, event.segment].mean())
        out.append(
            sim_events.TruthEvent(
                event_id=event.event_id,
                event_type=event.event_type,
                subtype=event.subtype,
                stations=tuple(ids[i] for i in event.stations),
                start=start + timedelta(minutes=event.start),
                end=start + timedelta(minutes=event.end),
                magnitude=float(event.magnitude) if labelled else None,
                segment=event.segment,
                sensor=event.sensor or None,
                volume_m3=result.event_volume_m3(event) if labelled else None,
                true_rate_m3h=rate,
            )
        )
    return out


def _aware(value: Any) -> datetime:
    stamp: datetime = np.datetime64(value, "us").astype(datetime)
    return stamp.replace(tzinfo=UTC)


def window_level(result: SimulationResult, scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision/recall/F1/ROC-AUC/AP of the service's score records against window labels."""
    from trainer.metrics import window_metrics

    if not scores:
        return {"windows": 0}
    start = _aware(result.times[0])
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
    return {k: metrics[k] for k in keys} | {"confusion_matrix": metrics["confusion_matrix"]}


def build_report(
    result: SimulationResult,
    test_start: int,
    live: LiveRun,
    size: SimSize,
) -> dict[str, Any]:
    """The figures of one operating point (one bundle's live run) on the test period."""
    start = _aware(result.times[0])
    # Events already under way when the test period begins are left out: their start was not replayed.
    events = [e for e in truth_events(result) if e.start >= start + timedelta(minutes=test_start)]
    data_end = start + timedelta(minutes=len(result.times))
    incidents = sim_events.fold_incidents(live.alerts)
    joined = sim_events.join(events, incidents, data_end)
    by_id = {e.event_id: e for e in events}
    for record in joined.events:
        incident = joined.caught_by.get(record["event_id"])
        truth = by_id[record["event_id"]]
        record["estimate"] = None
        if incident is None or truth.segment is None:
            continue
        first_minute = int((incident.window_start - start).total_seconds() // 60)
        last_minute = int((incident.span(data_end)[1] - start).total_seconds() // 60)
        estimate = estimate_extraction(result.segment_imbalance(truth.segment), first_minute, last_minute)
        if estimate is not None:
            record["estimate"] = {
                "rate_m3h": round(estimate.rate_m3h, 2),
                "volume_m3": round(estimate.volume_m3, 1),
                "baseline_m3h": round(estimate.baseline_m3h, 2),
                "minutes": estimate.minutes,
                "rate_error_pct": _pct_error(estimate.rate_m3h, truth.true_rate_m3h),
                "volume_error_pct": _pct_error(estimate.volume_m3, truth.volume_m3),
            }

    thefts = [r for r in joined.events if r["event_type"] == "theft"]
    bands = sim_events.band_figures(joined.events)
    station_months = size.stations * size.test_days / sim_events.DAYS_PER_MONTH
    causes = {
        c: sum(1 for f in joined.false_alarms if f["cause"] == c) for c in sim_events.FALSE_ALARM_CAUSES
    }
    normal_false = causes["unexplained"] + causes["transient"] + causes["maintenance"]
    false_rate = normal_false / station_months
    rate_2pct, n_2pct = sim_events.rate_at_least(joined.events, 0.02)
    median_all = sim_events.median_delay(thefts)
    smallest = sim_events.smallest_detected(joined.events)
    estimates = [r["estimate"] for r in thefts if r.get("estimate")]
    gap_incidents = [i for i in incidents if i.kind == sim_events.GAP_KIND]

    return {
        "threshold": live.bundle_info["threshold"],
        "path": "live: replay → Kafka → centinela detector service → alerts topic",
        "sizes": {
            "stations": size.stations,
            "train_days": size.train_days,
            "test_days": size.test_days,
            "station_months": station_months,
            "seeds": {"simulation": SEED, "fit": FIT_SEED},
            "theft_per_segment_month": size.theft_rate,
            "model_units": list(size.encoder_units),
            "epochs": size.epochs,
        },
        "detection_rate_by_band": bands["rate"],
        "median_minutes_to_alarm_by_band": bands["median"],
        "p90_minutes_to_alarm_by_band": bands["p90"],
        "events_by_band": bands["counts"],
        "leaks": sim_events.band_figures(joined.events, "leak")["counts"],
        "false_alarms_per_station_month": false_rate,
        "false_alarms_per_station_month_all": len(joined.false_alarms) / station_months,
        "false_alarms_by_cause": causes,
        "smallest_tap_detected_90pct": smallest,
        "detection_rate_at_least_2pct": rate_2pct,
        "thefts_at_least_2pct": n_2pct,
        "median_minutes_to_alarm": median_all,
        "targets": {
            "detection_at_least_2pct": {
                "target": TARGET_DETECTION_AT_2PCT,
                "value": rate_2pct,
                "met": rate_2pct is not None and rate_2pct >= TARGET_DETECTION_AT_2PCT,
            },
            "median_minutes_to_alarm": {
                "target": TARGET_MEDIAN_MINUTES,
                "value": median_all,
                "met": median_all is not None and median_all <= TARGET_MEDIAN_MINUTES,
            },
            "false_alarms_per_station_month": {
                "target": TARGET_FALSE_PER_STATION_MONTH,
                "value": false_rate,
                "met": false_rate <= TARGET_FALSE_PER_STATION_MONTH,
            },
        },
        "estimation": _estimation_summary(estimates),
        "sensor_faults": {
            "events": len(joined.faults),
            "with_data_gap_alarm": sum(1 for f in joined.faults if f["data_gap_alarms"]),
            "with_anomaly_alarm": sum(1 for f in joined.faults if f["anomaly_alarms"]),
            "anomaly_alarms_reading_as_sensor_trouble": sum(
                f["anomaly_alarms_reading_as_sensor_trouble"] for f in joined.faults
            ),
            "detail": joined.faults,
        },
        "data_gap_incidents": len(gap_incidents),
        "incidents": {
            "anomaly": sum(1 for i in incidents if i.kind != sim_events.GAP_KIND),
            "data_gap": len(gap_incidents),
        },
        "alerts": len(live.alerts),
        "window_level": window_level(result, live.scores),
        "replay": live.replay,
        "events": joined.events,
        "false_alarms": joined.false_alarms,
    }


def _pct_error(estimate: float, truth: float | None) -> float | None:
    if truth is None or truth == 0:
        return None
    return round(100.0 * (estimate - truth) / truth, 1)


def _estimation_summary(estimates: list[dict[str, Any]]) -> dict[str, Any]:
    rate = [abs(e["rate_error_pct"]) for e in estimates if e["rate_error_pct"] is not None]
    volume = [abs(e["volume_error_pct"]) for e in estimates if e["volume_error_pct"] is not None]
    return {
        "caught_thefts_estimated": len(estimates),
        "median_abs_rate_error_pct": float(np.median(rate)) if rate else None,
        "median_abs_volume_error_pct": float(np.median(volume)) if volume else None,
    }


def _print_summary(report: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="sim suite: thefts by size band (live path)")
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
    console.print(
        f"false alarms per station-month (normal operation): {report['false_alarms_per_station_month']:.2f}; "
        f"smallest tap caught 90 %: {report['smallest_tap_detected_90pct']}"
    )
    console.print(f"written {out / 'report.json'}, {out / 'report.md'}, {out / 'plots'}")
