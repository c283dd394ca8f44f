"""The service's view of the outside world: small protocols with a Kafka and an in-memory adapter.

The loop in ``stream.service`` only talks to these, so its tests run without a broker
(``stream.memory``) and the Kafka adapter (``stream.kafka_io``) stays a thin translation layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from detector.errors import BrokerError

Headers = list[tuple[str, bytes]]
# (topic, partition): the service consumes the readings topic and, with a line, the line topic.
Partition = tuple[str, int]


class SourceMessage(Protocol):
    """One consumed record; confluent-kafka's ``Message`` satisfies this as it is (no copy per message)."""

    def error(self) -> object | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Sequence[tuple[str, bytes | None]] | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class TransactionAbortedError(BrokerError):
    """A batch's transaction was aborted: none of it is visible and its offsets did not move."""


@dataclass(frozen=True, slots=True)
class Assigned:
    """A partition given to this instance; offsets below ``committed`` were processed before.

    A readings partition is positioned at or before ``committed`` (earlier by the rebuild horizon);
    the service re-reads those messages to rebuild state and publishes nothing for them. A line
    partition starts at ``committed``: its state comes whole from the state topic.
    """

    topic: str
    partition: int
    committed: int

    @property
    def key(self) -> Partition:
        return (self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Mark:
    """What to commit for one partition: the next offset to read, and the produce time (ms) of the
    last message processed, which tells a later owner how far back to re-read."""

    next_offset: int
    timestamp_ms: int


class AssignmentListener(Protocol):
    def assigned(self, partitions: Sequence[Assigned]) -> set[Partition]:
        """Take the new assignment; return the partitions whose state this instance still holds
        (they need no rebuild)."""
        ...

    def revoked(self, partitions: Sequence[Partition]) -> None: ...
    def restore(self, stations: Mapping[str, bytes], lines: Mapping[str, tuple[int, bytes]]) -> None:
        """The state topic's latest records for freshly assigned partitions: incident state per station
        (of fresh readings partitions) and segment state per line (key ``line/<id>``, of fresh line
        partitions, with the partition it was on)."""
        ...


class Broker(Protocol):
    """Readings in; alerts, scores and dead letters out; offsets committed with what was published."""

    def start(self, listener: AssignmentListener, rebuild_horizon_ms: int, line_topic: str = "") -> None:
        """Subscribe to the readings topic (and ``line_topic``, when given) and start serving."""
        ...

    def consume(self, max_messages: int, timeout_s: float) -> Sequence[SourceMessage]: ...
    def begin(self) -> None: ...
    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """Stage a message (``value`` None: a tombstone; ``partition`` None: the partitioner picks)."""
        ...

    def commit(self, marks: Mapping[Partition, Mark]) -> None: ...
    def abort(self) -> None: ...
    def rewind(self) -> None:
        """Re-position every assigned partition at its committed offset (re-announcing the assignment)."""
        ...

    def lag(self) -> dict[int, int]: ...
    def healthy(self) -> bool: ...
    def close(self) -> None: ...
