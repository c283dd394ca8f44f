"""The one place confluent-kafka's exceptions become ours: ``BrokerError``, raised ``from`` the
original so the traceback keeps librdkafka's reason; and which errors are worth retrying.

Everything here imports confluent-kafka lazily (a CLI that never talks to Kafka does not load it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from detector.errors import BrokerError


def kafka_error(error: BaseException) -> Any:
    """The ``KafkaError`` a ``KafkaException`` carries, or None."""
    return error.args[0] if getattr(error, "args", None) else None


@contextmanager
def kafka_errors(what: str) -> Iterator[None]:
    """Raise a ``KafkaException`` from the block as ``BrokerError("<what>: <reason>")``, ``from`` it.

    ``BrokerError`` and other exceptions pass unchanged: a ``BufferError`` (a full producer queue)
    is the caller's to serve, not a broker failure."""
    from confluent_kafka import KafkaException

    try:
        yield
    except KafkaException as error:
        raise broker_error(what, error) from error


def broker_error(what: str, error: BaseException) -> BrokerError:
    """``BrokerError("<what>: <reason>")`` for a ``KafkaException``; raise it ``from`` the error."""
    reason = kafka_error(error)
    return BrokerError(f"{what}: {reason if reason is not None else error}")


def _transient_codes() -> frozenset[int]:
    """Errors of the consume path that pass by themselves: a call timing out while the cluster is
    busy, offsets left unstable by a dead member's open transaction (until it times out), the group
    coordinator loading or moving, a broker away for a moment. Anything else is fatal."""
    from confluent_kafka import KafkaError

    return frozenset(
        {
            KafkaError._TIMED_OUT,
            KafkaError._TRANSPORT,
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError._WAIT_COORD,
            KafkaError.REQUEST_TIMED_OUT,
            KafkaError.UNSTABLE_OFFSET_COMMIT,
            KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError.NOT_COORDINATOR,
            KafkaError.REBALANCE_IN_PROGRESS,
            # A topic just created, or a leader moving: the partition has no leader for a moment.
            KafkaError.NOT_LEADER_FOR_PARTITION,
            KafkaError.LEADER_NOT_AVAILABLE,
        }
    )


def is_transient(error: Any) -> bool:
    """Whether a ``KafkaError`` (or a ``KafkaException`` carrying one) is worth retrying."""
    found = kafka_error(error) if isinstance(error, BaseException) else error
    if found is None or not hasattr(found, "code"):
        return False
    if found.fatal():
        return False
    return bool(found.retriable()) or found.code() in _transient_codes()
