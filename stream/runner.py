"""Wiring for one detector process: settings, bundle, metrics endpoint, Kafka, signals, the loop.

``run_detector`` is what ``centinela detect`` calls; tests call it in a thread with their own stop
event and registry (signals are only installed from the main thread).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from detector.bundle import Bundle
from detector.clock import SYSTEM_CLOCK, WallClock
from detector.errors import ConfigError
from detector.line_table import MonitorFactory, line_monitor
from detector.onnx_runtime import onnx_scorers
from detector.scoring import ReconstructorFactory
from detector.topology import Topology, load_topology
from kafkakit.config import kafka_client_config
from stream.health import DEFAULT_STALL_S, Health
from stream.metrics import DetectorMetrics, serve
from stream.reload import BundleWatcher, bundle_loader
from stream.service import DetectorService
from stream.settings import Settings, bundle_verify_key, describe

log = logging.getLogger(__name__)


@dataclass
class Running:
    """What a caller can reach while the detector runs (tests read the port and the service)."""

    service: DetectorService
    metrics_port: int | None
    watcher: BundleWatcher


def load_serving_bundle(settings: Settings) -> Bundle:
    """The bundle at ``bundle_path``, verified (and its line checked against ``topology`` when that
    is set); ``BundleError`` / ``ConfigError`` say why not."""
    key = bundle_verify_key(settings)
    bundle = bundle_loader(onnx_scorers_of(settings), verify_key=key)(settings.bundle_path)
    if settings.topology is not None:
        check_topology(load_topology(settings.topology), bundle, str(settings.topology))
    return bundle


def onnx_scorers_of(settings: Settings) -> ReconstructorFactory:
    """The scorer adapter the settings ask for: ONNX Runtime with ``scoring_threads`` lanes and calls of
    at most ``scoring_max_batch`` windows."""
    return onnx_scorers(settings.scoring_threads, settings.scoring_max_batch)


def check_topology(declared: Topology, bundle: Bundle, where: str) -> None:
    """Refuse a topology file that is not the bundle's line, naming the first field that differs."""
    if bundle.topology is None:
        raise ConfigError(
            f"--topology {where}: the bundle {bundle.path} has no line (train it with --topology)"
        )
    if declared == bundle.topology:
        return
    field = first_difference(declared.to_dict(), bundle.topology.to_dict()) or "(the whole file)"
    raise ConfigError(f"--topology {where}: {field} differs from the bundle's line ({bundle.path})")


def first_difference(mine: Any, theirs: Any, path: str = "") -> str | None:
    """The dotted path of the first place two plain-JSON values differ (``line[0].segment[1].length_km``)."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        for key in sorted(set(mine) | set(theirs)):
            where = f"{path}.{key}" if path else str(key)
            if key not in mine or key not in theirs:
                return where
            found = first_difference(mine[key], theirs[key], where)
            if found is not None:
                return found
        return None
    if isinstance(mine, list) and isinstance(theirs, list):
        for index, (left, right) in enumerate(zip(mine, theirs, strict=False)):
            found = first_difference(left, right, f"{path}[{index}]")
            if found is not None:
                return found
        return None if len(mine) == len(theirs) else f"{path}[{min(len(mine), len(theirs))}]"
    return None if mine == theirs else path


def run_detector(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    registry: CollectorRegistry | None = None,
    clock: WallClock = SYSTEM_CLOCK,
    on_start: Callable[[Running], None] | None = None,
    monitor_factory: MonitorFactory = line_monitor,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``): finish the batch in hand, publish, commit, close."""
    from kafkakit.check import check_connection
    from stream.kafka_io import KafkaBroker
    from stream.topics import require_topics, topic_plan

    stop = stop or threading.Event()
    # A loop may legitimately wait out one transactional call (transaction_timeout_s + 5 s).
    health = Health(stall_s=max(DEFAULT_STALL_S, 3 * settings.transaction_timeout_s))
    metrics = DetectorMetrics(registry or CollectorRegistry(), health)
    bundle = load_serving_bundle(settings)
    loader = bundle_loader(onnx_scorers_of(settings), bundle.sensors, verify_key=bundle_verify_key(settings))
    watcher = BundleWatcher(
        settings.bundle_path,
        loader,
        metrics,
        watch=settings.watch_bundle,
        interval_s=settings.watch_interval_s,
    )
    log.info("settings: %s", describe(settings))
    warn_if_operating_point_rejected(bundle)
    log.info(
        "model %s loaded from %s (threshold %g, sensors %s)",
        bundle.model_version,
        bundle.path,
        bundle.threshold,
        ",".join(bundle.sensors),
    )
    port: int | None = None
    server = None
    if settings.metrics_enabled:
        # Before Kafka: a port already taken is a start-up error, said in a second.
        server, port = serve_or_explain(metrics, settings.metrics_host, settings.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, port)
    restore = _install_signals(stop, watcher)
    try:
        # Seconds, not a silent retry loop, when the password, the CA or the listener is wrong.
        client_config = kafka_client_config(settings.kafka)
        brokers = check_connection(client_config, give_up=False, stop=stop)
        if stop.is_set():
            return  # SIGTERM while the connection was checked: nothing started, nothing to finish
        if brokers:
            # A missing output topic would otherwise surface a minute later as aborted transactions.
            require_topics(client_config, topic_plan(settings), create=settings.create_topics)
        else:
            log.warning("topics not checked: Kafka did not answer yet")
        broker = KafkaBroker(settings, stop=stop)
        service = DetectorService(
            settings, broker, bundle, metrics, clock=clock, watcher=watcher, monitor_factory=monitor_factory
        )
        if on_start is not None:
            on_start(Running(service, port, watcher))
        service.run(stop)
    finally:
        restore()
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]


def warn_if_operating_point_rejected(bundle: Bundle) -> bool:
    """Say loudly that the trainer's check rejected this bundle's threshold (served anyway: someone
    accepted it with --accept-operating-point); returns whether it did."""
    point = bundle.manifest.training.get("operating_point") or {}
    if point.get("accepted", True):
        return False
    log.warning(
        "bundle %s: its threshold failed the trainer's check on normal windows (%s); it was accepted by "
        "flag, expect more false alarms than the budget",
        bundle.path,
        point.get("message", "no detail"),
    )
    return True


def serve_or_explain(metrics: DetectorMetrics, host: str, port: int) -> tuple[object, int]:
    """``serve``, with a port already taken (or a host that is not ours) as one clear ``ConfigError``."""
    try:
        return serve(metrics, host, port)
    except OSError as error:
        raise ConfigError(
            f"metrics_port {port} on {host}: {error.strerror or error}; set CENTINELA_METRICS_PORT to a free "
            "port (0 picks one) or CENTINELA_METRICS_ENABLED=false"
        ) from error


def _install_signals(stop: threading.Event, watcher: BundleWatcher) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        stop.set()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        watcher.request()

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_stop),
        signal.SIGINT: signal.signal(signal.SIGINT, on_stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, on_hangup),
    }

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore
