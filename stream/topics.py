"""The detector's topics: which ones it needs, how they are configured, creating and checking them.

One plan (``topic_plan``) serves ``centinela topics create|check``, ``centinela detect`` at start
(``check`` by default, ``create`` with ``--create-topics``) and the demo, so the three never disagree.

Configuration chosen per role (docs/service.md, "Topics"):

- readings: delete policy, 7 days — enough to replay the rebuild horizon after a long outage;
- alerts: delete policy, 365 days, *not* compacted — every status of every incident (open, update,
  close) is the operators' audit trail; compaction keyed by incident would keep only the last one;
- dlq: delete policy, 30 days — time for someone to look at what was refused;
- scores: delete policy, 3 days — dashboards and backtests read recent scores only;
- state: compacted (``cleanup.policy=compact``) — the latest incident/segment state per key is all
  a new owner needs, however old;
- line (internal, with a topology only): delete policy, 1 day; the detector also creates it itself.

Partition counts: readings and its per-partition companions (state, line) get ``partitions``;
alerts, dlq and scores get ``min(partitions, 3)``. Replication ``-1`` takes the broker's default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detector.errors import BrokerError, ConfigError
from kafkakit.admin import admin_client, topic_metadata, wait_for_leaders
from stream.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
DEFAULT_PARTITIONS = 6
_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class TopicSpec:
    """One topic the detector reads or writes: its setting's name, partitions and topic configs."""

    role: str  # the TopicSettings field naming it: readings, alerts, dlq, scores, state, line
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)

    @property
    def setting(self) -> str:
        return f"topics.{self.role}"


def topic_plan(
    settings: Settings, partitions: int = DEFAULT_PARTITIONS, *, line: bool = False
) -> list[TopicSpec]:
    """The topics ``settings`` names (empty ones skipped); ``line``: also the internal line topic."""
    if partitions < 1:
        raise ConfigError(f"partitions must be at least 1, got {partitions}")
    topics = settings.topics
    outputs = min(partitions, 3)
    plan = [
        TopicSpec("readings", topics.readings, partitions, _delete(7)),
        TopicSpec("alerts", topics.alerts, outputs, _delete(365)),
        TopicSpec("dlq", topics.dlq, outputs, _delete(30)),
    ]
    if topics.scores:
        plan.append(TopicSpec("scores", topics.scores, outputs, _delete(3)))
    if topics.state:
        plan.append(TopicSpec("state", topics.state, partitions, {"cleanup.policy": "compact"}))
    if line:
        plan.append(TopicSpec("line", topics.line or f"{topics.readings}.line", partitions, _delete(1)))
    return plan


def _delete(days: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS)}


@dataclass(frozen=True)
class TopicStatus:
    spec: TopicSpec
    exists: bool
    partitions: int  # 0 when missing

    def describe(self) -> str:
        if not self.exists:
            return f"{self.spec.name} ({self.spec.setting}): missing"
        return f"{self.spec.name} ({self.spec.setting}): {self.partitions} partition(s)"


def check_topics(client_config: Mapping[str, Any], plan: Sequence[TopicSpec]) -> list[TopicStatus]:
    """Which topics of ``plan`` exist (one metadata request); ``BrokerError`` if Kafka does not answer."""
    return _statuses(admin_client(client_config), client_config, plan)


def _statuses(admin: Any, client_config: Mapping[str, Any], plan: Sequence[TopicSpec]) -> list[TopicStatus]:
    metadata = topic_metadata(admin, client_config, _TIMEOUT_S)
    statuses = []
    for spec in plan:
        found = metadata.topics.get(spec.name)
        exists = found is not None and found.error is None
        statuses.append(TopicStatus(spec, exists, len(found.partitions) if exists and found else 0))
    return statuses


def create_topics(client_config: Mapping[str, Any], plan: Sequence[TopicSpec]) -> list[TopicSpec]:
    """Create the topics of ``plan`` that are missing, with their configs; returns those created.

    Existing topics are left as they are (their partitions and configs are the operator's)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = admin_client(client_config)  # one client for the check and the creation
    missing = [status.spec for status in _statuses(admin, client_config, plan) if not status.exists]
    if not missing:
        return []
    wanted = [
        NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=-1, config=dict(spec.config))
        for spec in missing
    ]
    created = []
    for spec, future in zip(
        missing, admin.create_topics(wanted, operation_timeout=_TIMEOUT_S).values(), strict=True
    ):
        try:
            future.result(timeout=_TIMEOUT_S)
        except KafkaException as error:
            if "TOPIC_ALREADY_EXISTS" in str(error):
                continue  # another instance won the race: the topic is there, which is all we need
            raise BrokerError(
                f"cannot create topic {spec.name} ({spec.setting}): {error.args[0].str()}"
            ) from error
        log.info("created topic %s (%s, %d partitions)", spec.name, spec.setting, spec.partitions)
        created.append(spec)
    wait_for_leaders(client_config, [spec.name for spec in created], _TIMEOUT_S)
    return created


def require_topics(client_config: Mapping[str, Any], plan: Sequence[TopicSpec], *, create: bool) -> None:
    """The start-up check of ``centinela detect``: every topic of ``plan`` exists, or is created when
    ``create``; otherwise ``ConfigError`` naming each missing topic and its setting, in seconds."""
    if create:
        create_topics(client_config, plan)
        return
    missing = [status.spec for status in check_topics(client_config, plan) if not status.exists]
    if missing:
        names = ", ".join(f"{spec.name} ({spec.setting})" for spec in missing)
        raise ConfigError(
            f"missing Kafka topic(s): {names}; create them with `centinela topics create` "
            "(same settings) or start with --create-topics"
        )
