"""One scenario set for both ``stream.ports.Broker`` adapters: the in-memory broker the service's
unit tests run on (``stream.memory.MemoryBroker``) and the Kafka one (``stream.kafka_io.KafkaBroker``,
marked ``integration``: a real broker, never a mock).

What the service relies on and both must do alike: output visible only after ``commit``
(read-committed), nothing of an aborted batch visible and ``rewind`` back to the committed offsets,
the commit's produce-time metadata handed to the next owner, its rebuild starting by produce time
(``offsets_for_times``), the state topic's latest records restored to a fresh owner, and the
assignment callbacks announcing every readings partition with its committed offset. Each side is
driven through a small harness: how to write readings, read what is visible, and start a new owner.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import pytest

from stream.ports import Assigned, Broker, Mark, Partition, SourceMessage

READINGS, OUTPUT, STATE = "readings", "output", "state"  # roles; each harness names its topics
PARTITIONS = 2
MINUTE_MS = 60_000


class Recorder:
    """An ``AssignmentListener`` that records every call; ``keep``: answer that it still holds the
    state of every partition it is given (no rebuild), else none (a fresh owner)."""

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep
        self.events: list[tuple[str, list[tuple[Any, ...]]]] = []
        self.restored: list[dict[str, bytes]] = []

    def assigned(self, partitions: Sequence[Assigned]) -> set[Partition]:
        self.events.append(("assigned", sorted((p.topic, p.partition, p.committed) for p in partitions)))
        return {p.key for p in partitions} if self.keep else set()

    def revoked(self, partitions: Sequence[Partition]) -> None:
        if partitions:  # the in-memory broker announces an empty revocation at its first assignment
            self.events.append(("revoked", sorted(partitions)))

    def restore(self, stations: Mapping[str, bytes], lines: Mapping[str, tuple[int, bytes]]) -> None:
        self.restored.append(dict(stations))


class Harness(Protocol):
    topics: dict[str, str]

    def new_owner(self) -> Broker:
        """A broker in the group (the in-memory one: over the same log and committed offsets)."""
        ...

    def append(self, partition: int, timestamp_ms: int, value: bytes) -> None:
        """A reading written to the readings topic by a producer, stamped ``timestamp_ms``."""
        ...

    def visible(self, topic: str) -> list[bytes | None]:
        """What a read-committed consumer sees on ``topic``, in order."""
        ...

    def committed(self, partition: int) -> Mark | None:
        """The group's committed offset of a readings partition, with its metadata."""
        ...


class MemoryHarness:
    def __init__(self) -> None:
        from stream.memory import MemoryBroker

        self.topics = {READINGS: "readings", OUTPUT: "alerts", STATE: "state"}
        self.memory = MemoryBroker(topic=self.topics[READINGS], partitions=PARTITIONS, state_topic="state")
        self._owners = 0

    def new_owner(self) -> Broker:
        from stream.memory import MemoryBroker

        self._owners += 1
        if self._owners > 1:  # a new process: the same log, published records and offsets
            old = self.memory
            self.memory = MemoryBroker(
                topic=old.topic,
                partitions=old.partitions,
                state_topic=old.state_topic,
                log=old.log,
                published=old.published,
                committed=old.committed,
            )
        return self.memory

    def append(self, partition: int, timestamp_ms: int, value: bytes) -> None:
        self.memory.append(value, key=b"EST-01", partition=partition, timestamp_ms=timestamp_ms)

    def visible(self, topic: str) -> list[bytes | None]:
        return [message.value() for message in self.memory.published.get(topic, [])]

    def committed(self, partition: int) -> Mark | None:
        return self.memory.committed.get(partition)

    def close(self) -> None:
        return None


class KafkaHarness:
    def __init__(self, bootstrap: str) -> None:
        from tests.integration.kafka_helpers import TopicFactory, unique_name

        self.bootstrap = bootstrap
        self._factory = TopicFactory(bootstrap, prefix="contract")
        self.topics = {
            READINGS: self._factory(PARTITIONS, prefix="contract-readings"),
            OUTPUT: self._factory(1, prefix="contract-alerts"),
            STATE: self._factory(PARTITIONS, prefix="contract-state", config={"cleanup.policy": "compact"}),
            "dlq": self._factory(1, prefix="contract-dlq"),
        }
        self.group = unique_name("contract-group")
        self.instance = unique_name("contract")
        self._owners: list[Broker] = []

    def new_owner(self) -> Broker:
        from stream.kafka_io import KafkaBroker
        from stream.settings import Settings

        for owner in self._owners:  # one owner at a time, as a restarted process
            owner.close()
        settings = Settings.model_validate(
            {
                "kafka": {"bootstrap_servers": self.bootstrap},
                "topics": {
                    "readings": self.topics[READINGS],
                    "alerts": self.topics[OUTPUT],
                    "dlq": self.topics["dlq"],
                    "scores": "",
                    "state": self.topics[STATE],
                },
                "group_id": self.group,
                "instance_id": self.instance,
                "metrics_enabled": False,
                "transaction_timeout_s": 10,
            }
        )
        self._owners = [KafkaBroker(settings)]
        return self._owners[0]

    def append(self, partition: int, timestamp_ms: int, value: bytes) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap})
        producer.produce(self.topics[READINGS], value, b"EST-01", partition=partition, timestamp=timestamp_ms)
        assert producer.flush(30) == 0

    def visible(self, topic: str) -> list[bytes | None]:
        from kafkakit.read import read_to_end

        return [message.value() for message in read_to_end(self.bootstrap, topic)]

    def committed(self, partition: int) -> Mark | None:
        from confluent_kafka import Consumer, TopicPartition

        reader = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group})
        try:
            (found,) = reader.committed([TopicPartition(self.topics[READINGS], partition)], timeout=30)
        finally:
            reader.close()
        return Mark(found.offset, int(found.metadata)) if found.offset >= 0 else None

    def close(self) -> None:
        for owner in self._owners:
            owner.close()
        self._factory.cleanup()


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("kafka", marks=pytest.mark.integration)],
)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    made: MemoryHarness | KafkaHarness
    if request.param == "kafka":
        made = KafkaHarness(request.getfixturevalue("contract_kafka_bootstrap"))
    else:
        made = MemoryHarness()
    try:
        yield made
    finally:
        made.close()


def consume(broker: Broker, count: int, timeout_s: float = 60.0) -> list[SourceMessage]:
    """Exactly ``count`` messages (Kafka: the group join and the fetch take a few polls)."""
    taken: list[SourceMessage] = []
    deadline = time.monotonic() + timeout_s
    while len(taken) < count and time.monotonic() < deadline:
        taken += [m for m in broker.consume(count - len(taken), 0.5) if m.error() is None]
    assert len(taken) == count, f"consumed {len(taken)} of {count} messages in {timeout_s:g} s"
    return taken


def offsets(messages: Sequence[SourceMessage]) -> list[tuple[int | None, int | None]]:
    return [(m.partition(), m.offset()) for m in messages]


def now_ms() -> int:
    return int(time.time() * 1000)


def test_assignment_announces_every_readings_partition_and_a_rewind_re_announces_it(
    harness: Harness,
) -> None:
    readings = harness.topics[READINGS]
    stamp = now_ms()
    for partition in range(PARTITIONS):
        harness.append(partition, stamp, b"a")
    listener = Recorder(keep=True)
    broker = harness.new_owner()
    broker.start(listener, rebuild_horizon_ms=0)
    consume(broker, PARTITIONS)
    assert broker.healthy()
    assert listener.events == [("assigned", [(readings, p, 0) for p in range(PARTITIONS)])]
    broker.begin()
    broker.commit({(readings, p): Mark(1, stamp) for p in range(PARTITIONS)})
    broker.rewind()
    assert listener.events[1:] == [
        ("revoked", [(readings, p) for p in range(PARTITIONS)]),
        ("assigned", [(readings, p, 1) for p in range(PARTITIONS)]),
    ]


def test_output_is_visible_only_after_commit_with_the_offsets_and_their_metadata(harness: Harness) -> None:
    readings, output = harness.topics[READINGS], harness.topics[OUTPUT]
    stamp = now_ms() - MINUTE_MS
    harness.append(0, stamp, b"r0")
    harness.append(0, stamp + 1, b"r1")
    broker = harness.new_owner()
    broker.start(Recorder(), rebuild_horizon_ms=0)
    consume(broker, 2)
    broker.begin()
    broker.produce(output, b"EST-01", b"first alert")
    assert harness.visible(output) == []  # read-committed: nothing before the commit
    assert harness.committed(0) is None
    broker.commit({(readings, 0): Mark(2, stamp + 1)})
    assert harness.visible(output) == [b"first alert"]
    assert harness.committed(0) == Mark(2, stamp + 1)  # the produce time rides along as metadata


def test_an_aborted_batch_is_never_visible_and_rewind_returns_to_the_committed_offset(
    harness: Harness,
) -> None:
    readings, output = harness.topics[READINGS], harness.topics[OUTPUT]
    stamp = now_ms() - MINUTE_MS
    for i in range(3):
        harness.append(0, stamp + i, f"r{i}".encode())
    broker = harness.new_owner()
    broker.start(Recorder(keep=True), rebuild_horizon_ms=0)
    assert offsets(consume(broker, 3)) == [(0, 0), (0, 1), (0, 2)]
    broker.begin()
    broker.produce(output, b"EST-01", b"kept")
    broker.commit({(readings, 0): Mark(1, stamp)})  # only the first reading was finished
    broker.begin()
    broker.produce(output, b"EST-01", b"aborted")
    broker.abort()
    broker.rewind()
    assert offsets(consume(broker, 2)) == [(0, 1), (0, 2)]  # from the committed offset again
    broker.begin()
    broker.produce(output, b"EST-01", b"after the abort")
    broker.commit({(readings, 0): Mark(3, stamp + 2)})
    assert harness.visible(output) == [b"kept", b"after the abort"]
    assert harness.committed(0) == Mark(3, stamp + 2)


def test_a_fresh_owner_rebuilds_from_the_horizon_before_the_committed_produce_time(
    harness: Harness,
) -> None:
    readings = harness.topics[READINGS]
    base = now_ms() - 10 * MINUTE_MS
    for i in range(4):  # produced a minute apart
        harness.append(0, base + i * MINUTE_MS, f"r{i}".encode())
    first = harness.new_owner()
    first.start(Recorder(), rebuild_horizon_ms=0)
    consume(first, 4)
    first.begin()
    first.commit({(readings, 0): Mark(4, base + 3 * MINUTE_MS)})
    listener = Recorder()  # holds nothing: every partition is fresh
    second = harness.new_owner()
    second.start(listener, rebuild_horizon_ms=90_000)
    # The first message produced at or after 3 min - 90 s = 1.5 min: offset 2, before the committed 4.
    assert offsets(consume(second, 2)) == [(0, 2), (0, 3)]
    assert listener.events[0] == ("assigned", [(readings, 0, 4), (readings, 1, 0)])


def test_a_fresh_owner_restores_the_latest_state_record_per_station(harness: Harness) -> None:
    readings, state = harness.topics[READINGS], harness.topics[STATE]
    stamp = now_ms() - MINUTE_MS
    harness.append(0, stamp, b"r0")
    first = harness.new_owner()
    first.start(Recorder(), rebuild_horizon_ms=0)
    consume(first, 1)
    first.begin()
    first.produce(state, b"EST-01", b"v1", partition=0)
    first.produce(state, b"EST-02", b"v1", partition=1)
    first.commit({})
    first.begin()
    first.produce(state, b"EST-01", b"v2", partition=0)
    first.produce(state, b"EST-02", None, partition=1)  # a tombstone: the station's state is gone
    first.commit({(readings, 0): Mark(1, stamp)})
    first.begin()
    first.produce(state, b"EST-01", b"aborted", partition=0)
    first.abort()
    listener = Recorder()
    second = harness.new_owner()
    second.start(listener, rebuild_horizon_ms=0)
    harness.append(0, stamp + 1, b"r1")
    consume(second, 1)
    assert listener.restored[-1] == {"EST-01": b"v2"}
