"""The detector's Prometheus metrics, registered on an injected registry.

Names are the list in docs/contracts.md. Counters move once per batch, not per message. Per-station
series (score, threshold, open incident, freshness, the sensor contributions of the latest incident)
are not kept as labelled children updated on the hot path: a custom collector reads them from the
service's station table at scrape time, which costs nothing between scrapes and keeps memory flat at
10,000 stations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from detector.clock import SYSTEM_CLOCK, WallClock
from detector.line import SegmentView
from detector.records import DEAD_LETTER_REASONS
from detector.stations import StationView
from stream.health import Health, serve_endpoints

if TYPE_CHECKING:
    from stream.outbox import Outbox

__all__ = ["DetectorMetrics", "StationView", "serve"]

PREFIX = "centinela_"

# Seconds; the latency target is 250 ms at p99, so the buckets are dense below one second.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class _StationCollector(Collector):
    def __init__(self, stations: Callable[[], Iterable[StationView]], wall: WallClock) -> None:
        self._stations = stations
        self._wall = wall

    def describe(self) -> list[Metric]:
        return []  # collected lazily; describing would call into the service at registration

    def collect(self) -> Iterator[Metric]:
        score = GaugeMetricFamily(
            PREFIX + "score", "Score of the station's last scored window.", labels=["station"]
        )
        threshold = GaugeMetricFamily(
            PREFIX + "threshold", "Threshold the last window was judged against.", labels=["station"]
        )
        incident = GaugeMetricFamily(
            PREFIX + "incident_open", "1 while the station has an open incident.", labels=["station"]
        )
        freshness = GaugeMetricFamily(
            PREFIX + "data_freshness_seconds",
            "Wall-clock seconds since the station's newest reading arrived.",
            labels=["station"],
        )
        newest = GaugeMetricFamily(
            PREFIX + "last_reading_timestamp_seconds",
            "Event time of the station's newest reading (Unix seconds).",
            labels=["station"],
        )
        contribution = GaugeMetricFamily(
            PREFIX + "incident_contribution",
            "Each sensor's share of the reconstruction error in the station's latest incident alert "
            "(open or update); kept after the incident closes.",
            labels=["station", "sensor"],
        )
        now = self._wall.now().timestamp()
        for view in self._stations():
            labels = [view.station_id]
            if view.score is not None:
                score.add_metric(labels, view.score)
            if view.threshold is not None:
                threshold.add_metric(labels, view.threshold)
            incident.add_metric(labels, 1.0 if view.incident_open else 0.0)
            if view.last_arrival_s is not None:
                freshness.add_metric(labels, max(0.0, now - view.last_arrival_s))
            if view.newest_event_s is not None:
                newest.add_metric(labels, view.newest_event_s)
            for sensor, share in view.contributions:
                contribution.add_metric([view.station_id, sensor], share)
        yield from (score, threshold, incident, freshness, newest, contribution)


class _SegmentCollector(Collector):
    """Per-segment gauges, read from the service's line monitors at scrape time (label: segment)."""

    def __init__(self, segments: Callable[[], Iterable[SegmentView]]) -> None:
        self._segments = segments

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        labels = ["segment"]
        balance = GaugeMetricFamily(
            PREFIX + "segment_balance_m3h",
            "Latest compensated flow balance of the segment (m3/h missing between its stations).",
            labels=labels,
        )
        statistic = GaugeMetricFamily(
            PREFIX + "segment_statistic", "The segment's sequential test statistic.", labels=labels
        )
        limit = GaugeMetricFamily(
            PREFIX + "segment_limit", "The limit the statistic is judged against.", labels=labels
        )
        degraded = GaugeMetricFamily(
            PREFIX + "segment_degraded",
            "1 while the segment's balance is held (a meter fault, a silent station).",
            labels=labels,
        )
        incident = GaugeMetricFamily(
            PREFIX + "segment_incident_open", "1 while the segment has an open tap incident.", labels=labels
        )
        for view in self._segments():
            name = [view.segment_id]
            if view.balance_m3h is not None:
                balance.add_metric(name, view.balance_m3h)
            if view.statistic is not None:
                statistic.add_metric(name, view.statistic)
            if view.limit is not None:
                limit.add_metric(name, view.limit)
            degraded.add_metric(name, 0.0 if view.degraded is None else 1.0)
            incident.add_metric(name, 1.0 if view.incident_open else 0.0)
        yield from (balance, statistic, limit, degraded, incident)


class DetectorMetrics:
    """Every metric of the service; build one per registry (tests pass a fresh ``CollectorRegistry``)."""

    def __init__(self, registry: CollectorRegistry, health: Health | None = None) -> None:
        self.registry = registry
        self.health = health or Health()
        # process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds, ... (Linux).
        ProcessCollector(registry=registry)
        self.readings = Counter(
            PREFIX + "readings", "Readings consumed, by outcome.", ["outcome"], registry=registry
        )
        self.windows_scored = Counter(PREFIX + "windows_scored", "Windows scored.", registry=registry)
        self.windows_skipped = Counter(
            PREFIX + "windows_skipped",
            "Windows closed without a score, by reason.",
            ["reason"],
            registry=registry,
        )
        self.alerts = Counter(
            PREFIX + "alerts", "Alerts published.", ["kind", "status", "severity"], registry=registry
        )
        self.open_incidents = Gauge(PREFIX + "open_incidents", "Incidents open now.", registry=registry)
        self.scoring_seconds = Histogram(
            PREFIX + "scoring_seconds",
            "Time to score one batch of windows.",
            buckets=SCORING_BUCKETS,
            registry=registry,
        )
        self.decision_latency = Histogram(
            PREFIX + "decision_latency_seconds",
            "From the produce time of the reading that closed a window to its decision being published.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_windows = Histogram(
            PREFIX + "batch_windows", "Windows scored per batch.", buckets=BATCH_BUCKETS, registry=registry
        )
        self.consumer_lag = Gauge(
            PREFIX + "consumer_lag",
            "Messages behind the end of each assigned partition.",
            ["partition"],
            registry=registry,
        )
        self.dead_letters = Counter(
            PREFIX + "dead_letters",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.model_info = Gauge(
            PREFIX + "model_info",
            "The serving model (value 1).",
            ["model_version", "format_version"],
            registry=registry,
        )
        self.model_reloads = Counter(
            PREFIX + "model_reloads", "Bundles swapped in while running.", registry=registry
        )
        self.model_reload_failures = Counter(
            PREFIX + "model_reload_failures",
            "Bundles refused on reload (the old one kept serving).",
            registry=registry,
        )
        self.broker_up = Gauge(
            PREFIX + "broker_up", "1 while the Kafka cluster is reachable.", registry=registry
        )
        self.rebuilt_readings = Counter(
            PREFIX + "rebuilt_readings",
            "Readings re-read after an assignment to rebuild window state (nothing published for them).",
            registry=registry,
        )
        self.gap_windows_skipped = Counter(
            PREFIX + "gap_windows_skipped",
            "Windows of gaps longer than max_gap_windows_s skipped instead of cut (event time jumps).",
            registry=registry,
        )
        self.transactions = Counter(
            PREFIX + "transactions", "Batches committed, by outcome.", ["outcome"], registry=registry
        )
        self.line_readings = Counter(
            PREFIX + "line_readings",
            "Readings handed to a line monitor (segment balance), in event-time order.",
            registry=registry,
        )
        self.off_line_readings = Counter(
            PREFIX + "off_line_readings",
            "Readings of stations the bundle's topology does not know (scored per station only).",
            registry=registry,
        )

        self._zero_known_series()

    def _zero_known_series(self) -> None:
        """Create every known label set at 0, so rate() and increase() see a counter's first events."""
        from detector.incidents import SEVERITIES
        from detector.windows import SKIP_REASONS

        for outcome in ("accepted", "late", "duplicate", "invalid"):
            self.readings.labels(outcome=outcome)
        for reason in SKIP_REASONS:
            self.windows_skipped.labels(reason=reason)
        for kind in ("incident", "data_gap", "tap", "meter_fault"):
            for status in ("open", "update", "close"):
                for severity in SEVERITIES:
                    self.alerts.labels(kind=kind, status=status, severity=severity)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason=reason)
        for outcome in ("committed", "aborted"):
            self.transactions.labels(outcome=outcome)

    def watch_stations(
        self, stations: Callable[[], Iterable[StationView]], wall: WallClock = SYSTEM_CLOCK
    ) -> None:
        """Serve the per-station gauges from ``stations()`` at each scrape."""
        self.registry.register(_StationCollector(stations, wall))

    def watch_segments(self, segments: Callable[[], Iterable[SegmentView]]) -> None:
        """Serve the per-segment gauges from ``segments()`` at each scrape."""
        self.registry.register(_SegmentCollector(segments))

    def set_model(self, model_version: str, format_version: int) -> None:
        self.model_info.clear()
        self.model_info.labels(model_version=model_version, format_version=str(format_version)).set(1)

    def count_batch(self, batch: Outbox, published_s: float, open_incidents: int) -> None:
        """Move the counters by what a committed batch did (once, after its commit)."""
        decided = batch.decided
        for outcome, count in decided.outcomes.items():
            if count:
                self.readings.labels(outcome=outcome).inc(count)
        for reason, count in batch.dead.items():
            self.readings.labels(outcome="invalid").inc(count)
            self.dead_letters.labels(reason=reason).inc(count)
        if decided.scored:
            self.windows_scored.inc(decided.scored)
        if decided.line_readings:
            self.line_readings.inc(decided.line_readings)
        if decided.off_line:
            self.off_line_readings.inc(decided.off_line)
        for reason, count in decided.skipped.items():
            self.windows_skipped.labels(reason=reason).inc(count)
        if batch.scoring_s is not None:
            self.scoring_seconds.observe(batch.scoring_s)
            self.batch_windows.observe(decided.scored)
        if decided.latencies_ms:
            published_ms = published_s * 1000.0
            for produced_ms in decided.latencies_ms:
                self.decision_latency.observe(max(0.0, (published_ms - produced_ms) / 1000.0))
        if decided.alerts:
            for alert in decided.alerts:
                self.alerts.labels(kind=alert.kind, status=alert.status, severity=alert.severity).inc()
            self.open_incidents.set(open_incidents)
        self.transactions.labels(outcome="committed").inc()
        self.health.committed()

    def count_abort(self) -> None:
        self.transactions.labels(outcome="aborted").inc()
        self.health.aborted()

    def set_broker_up(self, up: bool) -> None:
        self.broker_up.set(1 if up else 0)
        self.health.broker_up = up

    def set_lag(self, lag: dict[int, int]) -> None:
        self.consumer_lag.clear()
        for partition, behind in lag.items():
            self.consumer_lag.labels(partition=str(partition)).set(behind)


def serve(metrics: DetectorMetrics, host: str, port: int) -> tuple[object, int]:
    """Start ``/metrics``, ``/healthz`` and ``/readyz`` (stream/health.py) in a daemon thread;
    returns the server and the port it listens on."""
    return serve_endpoints(metrics.registry, metrics.health, host, port)
