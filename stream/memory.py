"""An in-memory ``Broker``: the service's unit tests and the contract tests run on it without Kafka.

It keeps Kafka's semantics that the service relies on: partitions with offsets and produce
timestamps, a committed offset per partition with metadata, output visible only after ``commit``
(read-committed), and a rebuild start found by timestamp as ``offsets_for_times`` would.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from detector.errors import BrokerError
from stream.ports import Assigned, AssignmentListener, Headers, Mark, SourceMessage


@dataclass(frozen=True, slots=True)
class MemoryMessage:
    """Duck-types confluent-kafka's ``Message`` (``stream.ports.SourceMessage``)."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _timestamp_ms: int
    _headers: Headers | None = None

    def error(self) -> object | None:
        return None

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Sequence[tuple[str, bytes | None]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)


@dataclass
class MemoryBroker:
    """One readings topic with ``partitions``; every other topic is an append-only list of messages."""

    topic: str = "readings"
    partitions: int = 1
    state_topic: str = ""
    log: dict[int, list[MemoryMessage]] = field(default_factory=dict)
    published: dict[str, list[MemoryMessage]] = field(default_factory=dict)
    committed: dict[int, Mark] = field(default_factory=dict)
    fail_next_commit: bool = False
    # False: drain the partitions one after the other (a backlog where one partition runs far ahead).
    interleave: bool = True
    _staged: list[MemoryMessage] = field(default_factory=list)
    _position: dict[int, int] = field(default_factory=dict)
    _listener: AssignmentListener | None = None
    _horizon_ms: int = 0
    closed: bool = False

    def append(
        self,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int = 0,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> MemoryMessage:
        """Write a message to the readings topic, as a producer would."""
        messages = self.log.setdefault(partition, [])
        stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        message = MemoryMessage(self.topic, partition, len(messages), key, value, stamp, headers)
        messages.append(message)
        return message

    # -- Broker ------------------------------------------------------------------------------
    def start(self, listener: AssignmentListener, rebuild_horizon_ms: int) -> None:
        self._listener = listener
        self._horizon_ms = rebuild_horizon_ms
        self.reassign()

    def reassign(self) -> None:
        """Revoke everything and assign every partition again (a rebalance, or a restart)."""
        listener = self._listener
        assert listener is not None
        listener.revoked(list(self._position))
        assigned = [
            Assigned(p, self.committed[p].next_offset if p in self.committed else 0)
            for p in range(self.partitions)
        ]
        keep = listener.assigned(assigned)
        if self.state_topic:
            fresh = {item.partition for item in assigned if item.partition not in keep}
            latest: dict[str, bytes | None] = {}
            for message in self.published.get(self.state_topic, []):
                if message._partition in fresh and message._key is not None:
                    latest[message._key.decode()] = message._value
            listener.restore({station: value for station, value in latest.items() if value is not None})
        self._position = {}
        for item in assigned:
            start = item.committed
            mark = self.committed.get(item.partition)
            if item.partition not in keep and mark is not None:
                target = mark.timestamp_ms - self._horizon_ms
                messages = self.log.get(item.partition, [])
                start = next((m._offset for m in messages if m._timestamp_ms >= target), start)
                start = min(start, item.committed)
            self._position[item.partition] = start

    def consume(self, max_messages: int, timeout_s: float) -> Sequence[SourceMessage]:
        """Up to ``max_messages``, an equal share from each partition with messages left (as a fetch
        from several partitions interleaves them), in partition order within the batch."""
        if self.closed:
            raise BrokerError("consume on a closed broker")
        out: list[SourceMessage] = []
        while len(out) < max_messages:
            open_partitions = [
                p for p in sorted(self._position) if self._position[p] < len(self.log.get(p, []))
            ]
            if not open_partitions:
                break
            if not self.interleave:
                open_partitions = open_partitions[:1]
            share = max(1, (max_messages - len(out)) // len(open_partitions))
            for partition in open_partitions:
                begin = self._position[partition]
                chunk = self.log[partition][begin : begin + min(share, max_messages - len(out))]
                out.extend(chunk)
                self._position[partition] = begin + len(chunk)
        return out

    def begin(self) -> None:
        self._staged = []

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        stamp = int(time.time() * 1000)
        self._staged.append(MemoryMessage(topic, partition or 0, -1, key, value, stamp, headers))

    def commit(self, marks: Mapping[int, Mark]) -> None:
        if self.fail_next_commit:
            from stream.ports import TransactionAbortedError

            self.fail_next_commit = False
            self._staged = []
            raise TransactionAbortedError("injected abort")
        for message in self._staged:
            self.published.setdefault(message._topic, []).append(message)
        self._staged = []
        self.committed.update(marks)

    def abort(self) -> None:
        self._staged = []

    def rewind(self) -> None:
        self.reassign()

    def lag(self) -> dict[int, int]:
        return {p: len(self.log.get(p, [])) - position for p, position in self._position.items()}

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    # -- reading back --------------------------------------------------------------------------
    def values(self, topic: str) -> list[bytes]:
        return [message._value or b"" for message in self.published.get(topic, [])]
