"""Topic admin every part of the project shares: create a topic when missing, wait until its
partitions have leaders, delete topics. Failures are ``BrokerError`` (``kafkakit.errors``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from detector.errors import BrokerError
from kafkakit.errors import kafka_error, kafka_errors

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 15.0
# Client properties that are callbacks of another client, never an admin client's.
_CALLBACKS = ("error_cb", "logger", "on_delivery")


def admin_client(client_config: Mapping[str, Any]) -> Any:
    """An ``AdminClient`` on ``client_config`` (librdkafka properties; callbacks left out)."""
    from confluent_kafka.admin import AdminClient

    settings = {key: value for key, value in client_config.items() if key not in _CALLBACKS}
    # log_level 4 unless told otherwise: closing an admin client logs notices about purged requests.
    return AdminClient({"log_level": 4, **settings})


def topic_metadata(admin: Any, client_config: Mapping[str, Any], timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """The cluster's metadata (every topic); ``BrokerError`` naming the bootstrap address if Kafka
    does not answer within ``timeout_s``."""
    with kafka_errors(f"cannot reach Kafka at {client_config.get('bootstrap.servers', '?')}"):
        return admin.list_topics(timeout=timeout_s)


def ensure_topic(
    client_config: Mapping[str, Any],
    topic: str,
    partitions: int,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    config: Mapping[str, str] | None = None,
) -> int:
    """Create ``topic`` with ``partitions`` (and topic ``config``) when missing, then wait until its
    partitions have leaders; returns its partition count (an existing topic's own). Replication
    ``-1`` takes the broker's default. Another client creating it meanwhile is no error."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = admin_client(client_config)
    existing = topic_metadata(admin, client_config, timeout_s).topics.get(topic)
    if existing is not None and existing.error is None:
        return len(existing.partitions)
    wanted = NewTopic(topic, num_partitions=partitions, replication_factor=-1, config=dict(config or {}))
    future = admin.create_topics([wanted], operation_timeout=timeout_s)[topic]
    try:
        future.result(timeout=timeout_s)
        log.info("created topic %s with %d partitions", topic, partitions)
    except KafkaException as error:
        reason = kafka_error(error)
        if reason is None or reason.code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise BrokerError(f"cannot create topic {topic}: {reason or error}") from error
    wait_for_leaders(client_config, [topic], timeout_s)
    return partitions


def wait_for_leaders(
    client_config: Mapping[str, Any], names: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S
) -> None:
    """Return once every partition of ``names`` has a leader: a topic just created answers
    NOT_LEADER_FOR_PARTITION for a moment, and a client reading it then would stop. ``BrokerError``
    naming the topics still without leaders after ``timeout_s``."""
    waiting = list(names)
    if not waiting:
        return
    admin = admin_client(client_config)
    deadline = time.monotonic() + timeout_s
    while waiting:
        topics = topic_metadata(admin, client_config, timeout_s).topics
        waiting = [name for name in waiting if not _led(topics.get(name))]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise BrokerError(
                f"topics created but without partition leaders after {timeout_s:g} s: {', '.join(waiting)}"
            )
        time.sleep(0.1)


def _led(topic: Any) -> bool:
    return (
        topic is not None
        and topic.error is None
        and bool(topic.partitions)
        and all(p.leader >= 0 and p.error is None for p in topic.partitions.values())
    )


def delete_topics(
    client_config: Mapping[str, Any], names: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S
) -> None:
    """Delete ``names`` (what a demo, an evaluation or a benchmark created); a missing topic is
    ignored, any other failure logged as a warning: leftovers are harmless and never stop a run."""
    from confluent_kafka import KafkaException

    if not names:
        return
    admin = admin_client(client_config)
    for name, future in admin.delete_topics(list(names), operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as error:
            if "UNKNOWN_TOPIC" not in str(error):
                reason = kafka_error(error)
                log.warning("could not delete topic %s: %s", name, reason.str() if reason else error)
