"""The detector's settings: one frozen object, read once at the CLI and passed down.

Sources, strongest first: ``CENTINELA_*`` environment variables (nested with ``__``, e.g.
``CENTINELA_KAFKA__SECURITY_PROTOCOL``), then ``KAFKA_BOOTSTRAP_SERVERS`` (the variable every
Kafka tool understands, so one export points the whole project at an existing cluster), then the
optional TOML file given with ``--config``, then the defaults below.

The Kafka section, the sources and the loading are the Kafka kit's (``kafkakit.config``): replay
reads the same names. Importing this module has no side effects.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from detector.incidents import IncidentPolicy
from detector.onnx_runtime import DEFAULT_MAX_BATCH
from kafkakit.config import KafkaClientSettings, Section, load

if TYPE_CHECKING:
    from detector.engine import EngineSettings


class TopicSettings(Section):
    readings: str = Field(default="centinela.readings", min_length=1)
    alerts: str = Field(default="centinela.alerts", min_length=1)
    dlq: str = Field(default="centinela.dlq", min_length=1)
    scores: str = "centinela.scores"  # empty: no per-window score records
    # Compacted topic with the incident state per station, written in each batch's transaction, on
    # the partition of the station's readings. Empty: a new owner rebuilds incident state by
    # re-scoring the rebuild horizon instead (exact only for incidents shorter than the horizon).
    state: str = ""
    # Internal topic a line's readings meet on (key = line id), with a line in the bundle only; the
    # service consumes it in the same group. Empty: "<readings>.line". Give it as many partitions as
    # the readings topic (the state topic holds each line's snapshot on its line partition's number).
    line: str = ""


class IncidentSettings(Section):
    """``detector.incidents.IncidentPolicy`` in settings form."""

    k: int = Field(default=1, ge=1)
    n: int = Field(default=1, ge=1, le=64)
    hysteresis: float = Field(default=0.8, gt=0, le=1)
    close_after: int = Field(default=2, ge=1)
    update_every_s: float = Field(default=900.0, ge=0)
    severity_bands: tuple[float, float, float] = (1.0, 1.5, 3.0)
    # An incident closes (reason max_length) after this much event time; 0: no limit.
    max_incident_s: float = Field(default=12 * 3600.0, ge=0)
    rearm_margin: float = Field(default=1.5, ge=1)

    def policy(self) -> IncidentPolicy:
        return IncidentPolicy(
            k=self.k,
            n=self.n,
            hysteresis=self.hysteresis,
            close_after=self.close_after,
            update_every=timedelta(seconds=self.update_every_s),
            severity_bands=self.severity_bands,
            max_length=timedelta(seconds=self.max_incident_s) if self.max_incident_s > 0 else None,
            rearm_margin=self.rearm_margin,
        )


class Settings(KafkaClientSettings):
    """Everything ``centinela detect`` can be told; see docs/service.md for each setting."""

    model_config = SettingsConfigDict(extra="forbid")

    topics: TopicSettings = TopicSettings()
    incident: IncidentSettings = IncidentSettings()
    group_id: str = Field(default="centinela-detector", min_length=1)
    # Stable per process slot (a hostname in compose or a StatefulSet): the transactional id is
    # derived from it, so a restarted instance fences its own unfinished transaction at once.
    instance_id: str = Field(default_factory=socket.gethostname, min_length=1)
    # The consumer joins as static member ``instance_id``: restarted after a crash, it takes its
    # partitions back at once instead of waiting out the dead member's session (45 s). The price: a
    # detector stopped for good keeps its partitions unread for that long before they move.
    static_membership: bool = True
    bundle_path: Path = Path("models/current")
    # The key the bundle must be signed with (detector.bundle_signature): set, an unsigned or edited
    # bundle is refused at start and at every reload. Given as text (CENTINELA_BUNDLE_KEY) or a file
    # (a mounted secret); read when the bundle is loaded, never logged.
    bundle_key: SecretStr | None = None
    bundle_key_file: Path | None = None
    # A topology file the operator expects the bundle to carry: the service refuses to start when the
    # bundle's line differs from it (or the bundle has none). None: the bundle's line is used unchecked.
    topology: Path | None = None
    watch_bundle: bool = True
    watch_interval_s: float = Field(default=5.0, gt=0)
    metrics_host: str = "0.0.0.0"  # a service's metrics endpoint listens on all interfaces
    metrics_port: int = Field(default=9108, ge=0, le=65535)  # 0: any free port (tests)
    metrics_enabled: bool = True
    # At start the detector checks that its topics exist and stops, naming the missing ones; true:
    # it creates them instead, configured as ``centinela topics create`` would (stream/topics.py).
    create_topics: bool = False
    idle_timeout_s: float = Field(default=300.0, gt=0)
    # A reading stamped further ahead of the wall clock is dead-lettered: one bad clock would otherwise
    # push a station's watermark into the future (its later readings all late, the gap all data_gap).
    max_future_s: float = Field(default=86400.0, gt=0)
    # At most this much event time of a gap (after a station's newest reading) is cut into windows,
    # all unscorable (one data_gap alert); the rest of a longer gap is skipped, counted in
    # centinela_gap_windows_skipped_total and logged once per gap. A year-old first reading followed
    # by a current one used to open 105,000 windows.
    max_gap_windows_s: float = Field(default=21600.0, gt=0)
    max_batch: int = Field(default=5000, ge=1, le=1_000_000)
    poll_timeout_s: float = Field(default=0.05, gt=0, le=10)
    exactly_once: bool = True
    transaction_timeout_s: float = Field(default=30.0, ge=1)
    broker_outage_limit_s: float = Field(default=300.0, gt=0)
    lag_interval_s: float = Field(default=5.0, gt=0)
    accept_unknown_stations: bool = True
    max_message_bytes: int = Field(default=65536, ge=256)
    scoring_threads: int = Field(default=2, ge=1, le=64)
    # Windows per ONNX Runtime call: a poll's windows are still scored in one Bundle.score call, which
    # splits them (see detector.onnx_runtime.DEFAULT_MAX_BATCH: faster per window, and bounds ORT's arena).
    scoring_max_batch: int = Field(default=DEFAULT_MAX_BATCH, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_bundle_key(self) -> Settings:
        if self.bundle_key is not None and self.bundle_key_file is not None:
            raise ValueError("set bundle_key or bundle_key_file, not both")
        return self

    @field_validator("instance_id", "group_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable() or " " in value:
            raise ValueError("must be printable without spaces")
        return value

    @property
    def transactional_id(self) -> str:
        return f"{self.group_id}.{self.instance_id}"

    def engine_settings(self) -> EngineSettings:
        """The core's rules (``detector.engine.Engine``) as these settings set them."""
        from detector.engine import EngineSettings

        return EngineSettings(
            idle_timeout_s=self.idle_timeout_s,
            max_future_s=self.max_future_s,
            max_gap_windows_s=self.max_gap_windows_s,
            refuse_unknown_stations=not self.accept_unknown_stations,
            max_message_bytes=self.max_message_bytes,
            policy=self.incident.policy(),
            score_records=bool(self.topics.scores),
            state_records=bool(self.topics.state),
        )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings once; a bad one raises ``ConfigError`` naming it (the CLI exits 2)."""
    return load(Settings, config_file, **overrides)


def bundle_verify_key(settings: Settings) -> bytes | None:
    """The bundle verification key, or None when bundles are not checked for a signature;
    ``ConfigError`` (naming the setting, never the key) when it is unreadable or too short."""
    from detector.bundle_signature import key_from_text, read_key_file

    if settings.bundle_key is not None:
        return key_from_text(settings.bundle_key.get_secret_value(), "bundle_key (CENTINELA_BUNDLE_KEY)")
    if settings.bundle_key_file is not None:
        return read_key_file(settings.bundle_key_file, "bundle_key_file (CENTINELA_BUNDLE_KEY_FILE)")
    return None


def describe(settings: Settings) -> dict[str, Any]:
    """The settings as a log line may show them: secrets stay masked."""
    return settings.model_dump(mode="json")
