"""Reading Kafka to its end: every committed record of a topic, and whether a consumer group has
committed a topic to its end (how the demo, the evaluation, benchmarks and tests know a detector
has finished a replay)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from detector.errors import BrokerError
from kafkakit.errors import broker_error, is_transient, kafka_errors

DEFAULT_TIMEOUT_S = 30.0
_CALLBACKS = ("error_cb", "logger", "on_delivery")
_POLL_S = 0.2


def _client(client: str | Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka properties from a bootstrap address or a client configuration (callbacks of
    another client left out)."""
    if isinstance(client, str):
        return {"bootstrap.servers": client}
    return {key: value for key, value in client.items() if key not in _CALLBACKS}


def read_to_end(
    client: str | Mapping[str, Any],
    topic: str,
    partitions: Sequence[int] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Any]:
    """Every committed record (``read_committed``) of ``topic`` from the beginning up to the end
    each partition had when the read started, partition by partition in offset order; confluent-kafka
    ``Message`` objects. ``partitions``: those only (None: all). Errors as ``iter_to_end``; it
    holds every record in memory at once, so a large topic is read with ``iter_to_end``."""
    records: dict[int, list[Any]] = {}
    for message in iter_to_end(client, topic, partitions, timeout_s=timeout_s):
        records.setdefault(message.partition() or 0, []).append(message)
    return [message for p in sorted(records) for message in records[p]]


def iter_to_end(
    client: str | Mapping[str, Any],
    topic: str,
    partitions: Sequence[int] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Iterator[Any]:
    """Every committed record (``read_committed``) of ``topic`` from the beginning up to the end
    each partition had when the read started, as they come: each partition in offset order, the
    partitions interleaved. Nothing is held, so a state topic of any size restores in bounded memory.

    Done when every partition's position reaches its end, not after a pause: on a loaded broker a
    pause came before the newest records. A trailing transaction marker moves the position without
    coming back as a record. ``BrokerError`` when the topic does not exist, Kafka fails, or the end
    is not reached within ``timeout_s``; a transient error of the first requests is retried until
    then. ``client``: a bootstrap address or librdkafka properties (a ``group.id`` there is used,
    never joined: partitions are assigned, nothing is committed)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    config = {"group.id": f"centinela-reader-{uuid.uuid4().hex[:8]}", **_client(client)}
    config |= {"enable.auto.commit": False, "isolation.level": "read_committed"}
    deadline = time.monotonic() + timeout_s
    with kafka_errors(f"cannot read {topic}"):
        reader = Consumer(config)
    try:
        ends = _retrying(
            lambda: _ends(reader, topic, partitions), deadline, f"cannot read the ends of {topic}"
        )
        with kafka_errors(f"cannot read {topic}"):
            reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            done = {p for p, end in ends.items() if end <= 0}
        while len(done) < len(ends) and time.monotonic() < deadline:
            with kafka_errors(f"cannot read {topic}"):
                batch = reader.consume(1000, _POLL_S)
            for message in batch:
                if message.error() is None and (message.partition() or 0) in ends:
                    yield message
            waiting = [TopicPartition(topic, p) for p in ends if p not in done]
            with kafka_errors(f"cannot read {topic}"):
                done |= {tp.partition for tp in reader.position(waiting) if tp.offset >= ends[tp.partition]}
        if len(done) < len(ends):
            raise BrokerError(
                f"could not read {topic} {sorted(set(ends) - done)} to its end in {timeout_s:g} s"
            )
    finally:
        reader.close()


def _ends(reader: Any, topic: str, partitions: Sequence[int] | None) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    if partitions is None:
        found = reader.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None:
            raise BrokerError(f"topic {topic} does not exist")
        partitions = sorted(found.partitions)
    return {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}


def _retrying(call: Any, deadline: float, what: str) -> Any:
    """``call()``, retried while it fails with a transient Kafka error and ``deadline`` is ahead."""
    from confluent_kafka import KafkaException

    while True:
        try:
            return call()
        except KafkaException as error:
            if not is_transient(error) or time.monotonic() >= deadline:
                raise broker_error(what, error) from error
            time.sleep(0.5)


def committed_to_end(
    client: str | Mapping[str, Any], group: str, topic: str, *, transactional: bool = False
) -> bool:
    """Whether ``group`` has committed every partition of ``topic`` up to its current end.

    ``transactional``: ``topic`` is written in transactions (the service's internal line topic,
    ``<readings>.line``): its last offset is the last transaction's commit marker, which no consumer
    commits past, so one offset short of the end is the end. A detector with a line in its bundle
    has finished a replay once both its readings and its line topic are committed to the end.

    A transient Kafka error (the group coordinator moving, a timeout under load) answers False:
    callers poll, and one such error once crashed a 15-minute ``evaluate sim`` run. Any other
    Kafka error raises ``BrokerError``. ``client``: a bootstrap address or librdkafka properties."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({**_client(client), "group.id": group, "enable.auto.commit": False, "log_level": 3})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            if high > low and tp.offset < high - (1 if transactional else 0):  # empty: nothing to commit
                return False
        return True
    except KafkaException as error:
        if is_transient(error):  # the coordinator moving under load: not known yet, ask again
            return False
        raise broker_error(f"cannot read the progress of group {group} on {topic}", error) from error
    finally:
        consumer.close()
