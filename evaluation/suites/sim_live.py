"""The sim suite's live step: replay the test period into Kafka, run the detector service on it,
read what it published (read_committed); and the offline line oracle to compare it with.

The service is ``stream.runner.run_detector`` (what ``centinela detect`` runs), in a thread, exactly
once, on fresh topics, until its group has committed every reading. Every topic setting of the
service with a non-empty default gets a fresh name for the run (so an internal topic the service
adds, e.g. a repartition topic keyed by line, is isolated too, with no change here).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.errors import CentinelaError

if TYPE_CHECKING:
    import pandas as pd

    from detector.topology import Topology

log = logging.getLogger(__name__)

# The topics this suite creates itself (one partition each); the readings topic gets three.
OWN_TOPICS = ("alerts", "dlq", "scores")
READINGS_PARTITIONS = 3
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class LiveRun:
    alerts: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    replay: dict[str, Any]
    bundle_info: dict[str, Any]
    seconds: dict[str, float]


def run_topics(run_id: str) -> dict[str, str]:
    """A fresh name for every topic setting of the service that is on by default."""
    from stream.settings import TopicSettings

    defaults = TopicSettings()
    names = [name for name in TopicSettings.model_fields if getattr(defaults, name)]
    return {name: f"centinela.eval-sim.{run_id}.{name}" for name in names}


def live(frame: pd.DataFrame, bundle_path: Path, bootstrap: str) -> LiveRun:
    """Replay ``frame`` (the test period) into fresh topics; run the detector until it committed
    every reading; read the alerts and scores topics."""
    from prometheus_client import CollectorRegistry

    from detector.bundle import load_bundle
    from detector.onnx_runtime import onnx_scorers
    from kafkakit.admin import delete_topics, ensure_topic
    from kafkakit.read import committed_to_end
    from replay.csv_source import SourceOptions
    from replay.producer import ReplayOptions, replay_frame
    from stream.runner import run_detector
    from stream.settings import Settings

    bundle = load_bundle(bundle_path, reconstructor_factory=onnx_scorers(threads=1))
    run_id = uuid.uuid4().hex[:8]
    topics = run_topics(run_id)
    client = {"bootstrap.servers": bootstrap}
    for name in OWN_TOPICS:
        if name in topics:
            ensure_topic(client, topics[name], 1)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    readings = frame[["timestamp", "station_id", *bundle.sensors]]
    options = ReplayOptions(
        source=SourceOptions(sensors=tuple(bundle.sensors)), partitions=READINGS_PARTITIONS
    )
    summary = replay_frame(readings, topics["readings"], options, client)
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
        # With a line, the readings meet again on the internal line topic: done once both are committed.
        line_topic = f"{topics['readings']}.line" if bundle.topology is not None else ""

        def finished() -> bool:
            if not committed_to_end(bootstrap, group, topics["readings"]):
                return False
            return not line_topic or committed_to_end(bootstrap, group, line_topic, transactional=True)

        _wait(lambda: finished() or bool(errors), 900, thread)
    finally:
        stop.set()
        thread.join(60)
    if errors:
        raise CentinelaError(f"the detector failed during the sim suite: {errors[0]}") from errors[0]
    seconds["detect"] = time.perf_counter() - detecting
    alerts = read_topic(bootstrap, topics["alerts"])
    scores = read_topic(bootstrap, topics["scores"]) if "scores" in topics else []
    dead = read_topic(bootstrap, topics["dlq"])
    delete_topics(client, run_topic_names(client, f"centinela.eval-sim.{run_id}.") or list(topics.values()))
    info = {
        "model_version": bundle.model_version,
        "threshold": bundle.threshold,
        "sensors": list(bundle.sensors),
        "aggregation": bundle.manifest.aggregation,
        "window_minutes": bundle.window_spec.length.total_seconds() / 60,
        "step_minutes": bundle.window_spec.step.total_seconds() / 60,
        "line": bundle.topology is not None,
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


def read_topic(bootstrap: str, topic: str, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Every committed message of ``topic`` (read_committed, to its end), decoded."""
    import orjson

    from kafkakit.read import read_to_end

    out: list[dict[str, Any]] = []
    for message in read_to_end(bootstrap, topic, timeout_s=timeout_s):
        value = message.value()
        try:
            out.append(orjson.loads(value) if value else {})
        except orjson.JSONDecodeError:
            out.append({"raw": True})  # dead letters keep the original bytes
    return out


def run_topic_names(client: Mapping[str, str], prefix: str) -> list[str]:
    """Every topic of the run, the service's internal ones (e.g. its line topic) included."""
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    try:
        names = AdminClient({"log_level": 4, **client}).list_topics(timeout=10).topics
    except Exception as error:  # listing is a courtesy: fall back to the names this run chose
        log.info("could not list topics: %s", error)
        return []
    return sorted(name for name in names if name.startswith(prefix))


# -- the offline line oracle ----------------------------------------------------------------------
def readings_of(
    frame: pd.DataFrame, fields: tuple[str, ...]
) -> Iterator[tuple[str, datetime, dict[str, float]]]:
    """(station, ts, values) in time order, as the service receives them: rows with an empty cell
    are left out (the replay refuses them)."""
    import pandas as pd

    chosen = frame[["timestamp", "station_id", *fields]].dropna()
    stamps = pd.DatetimeIndex(chosen["timestamp"]).to_pydatetime()
    stations = chosen["station_id"].astype(str).to_numpy()
    values = chosen[list(fields)].to_numpy(dtype=float)
    for index in range(len(chosen)):
        yield stations[index], stamps[index], dict(zip(fields, values[index].tolist(), strict=True))


def admitted(
    readings: Iterable[tuple[str, datetime, dict[str, float]]], sampling: timedelta = timedelta(minutes=1)
) -> Iterator[tuple[str, datetime, dict[str, float]]]:
    """The readings a station's window buffer accepts (``detector.windows``: a stamp goes to the
    nearest point of the sampling grid, the first one in a slot wins, the rest are duplicates). The
    service feeds its line monitor only these: with clock skew, a station whose clock wanders across
    ±30 s stamps two readings into one minute, and the second never reaches the line."""
    step = sampling // timedelta(microseconds=1)
    taken: dict[str, set[int]] = {}
    for station_id, ts, values in readings:
        micros = (ts - EPOCH) // timedelta(microseconds=1)
        slot = (micros + step // 2) // step
        slots = taken.setdefault(station_id, set())
        if slot in slots:
            continue
        slots.add(slot)
        yield station_id, ts, values


def offline_line_alerts(
    frame: pd.DataFrame, topology: Topology, calibration: Any, fields: tuple[str, ...], model_version: str
) -> list[dict[str, Any]]:
    """The segment alerts (tap, meter_fault) ``detector.line.offline.line_alerts`` raises on the
    test readings the service's line receives (``admitted``), in the order it feeds them (by
    timestamp, then station: ``detector.line_table``), as the alerts topic's JSON.

    The order matters: fed in the frame's order (true minute first, stamps skewed by up to 45 s),
    the monitor raised 676 segment alerts on seed 7's test period against 456 in stamp order (78
    spurious ``silent`` meter faults at one station)."""
    from detector.line.offline import line_alerts

    readings = sorted(admitted(readings_of(frame, fields)), key=lambda row: (row[1], row[0]))
    alerts = line_alerts(readings, topology, calibration, model_version=model_version)
    return [alert.model_dump(mode="json", by_alias=True) for alert in alerts]
