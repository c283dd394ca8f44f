"""An in-memory ``Broker``: the service's unit tests and the contract tests run on it without Kafka.

It keeps Kafka's semantics that the service relies on: partitions with offsets and produce
timestamps, a committed offset per partition with metadata, output visible only after ``commit``
(read-committed), and a rebuild start found by timestamp as ``offsets_for_times`` would.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from detector.errors import BrokerError
from detector.records import line_of_state_key
from stream.ports import Assigned, AssignmentListener, Headers, Mark, Partition, SourceMessage


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
    """One readings topic with ``partitions`` and, once ``start`` names one, a line topic with
    ``line_partitions`` that is consumed too (records produced to it become readable at ``commit``,
    on the partition ``partition`` says or ``crc32(key) % line_partitions``); every other topic is an
    append-only list of messages. One consumer owns every partition (``reassign`` re-announces them)."""

    topic: str = "readings"
    partitions: int = 1
    state_topic: str = ""
    line_partitions: int = 2
    log: dict[int, list[MemoryMessage]] = field(default_factory=dict)
    line_log: dict[int, list[MemoryMessage]] = field(default_factory=dict)
    published: dict[str, list[MemoryMessage]] = field(default_factory=dict)
    committed: dict[int, Mark] = field(default_factory=dict)  # readings partition -> mark
    line_committed: dict[int, Mark] = field(default_factory=dict)
    fail_next_commit: bool = False
    # False: drain the partitions one after the other (a backlog where one partition runs far ahead).
    interleave: bool = True
    line_topic: str = ""
    _staged: list[MemoryMessage] = field(default_factory=list)
    _position: dict[Partition, int] = field(default_factory=dict)
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

    def _source(self, topic: str) -> tuple[dict[int, list[MemoryMessage]], dict[int, Mark], int]:
        if topic == self.topic:
            return self.log, self.committed, self.partitions
        return self.line_log, self.line_committed, self.line_partitions

    # -- Broker ------------------------------------------------------------------------------
    def start(self, listener: AssignmentListener, rebuild_horizon_ms: int, line_topic: str = "") -> None:
        self._listener = listener
        self._horizon_ms = rebuild_horizon_ms
        self.line_topic = line_topic
        self.reassign()

    def reassign(self) -> None:
        """Revoke everything and assign every partition again (a rebalance, or a restart)."""
        listener = self._listener
        assert listener is not None
        listener.revoked(list(self._position))
        assigned = []
        for topic in (self.topic, self.line_topic) if self.line_topic else (self.topic,):
            _log, committed, count = self._source(topic)
            assigned += [
                Assigned(topic, p, committed[p].next_offset if p in committed else 0) for p in range(count)
            ]
        keep = listener.assigned(assigned)
        fresh = {item.key for item in assigned if item.key not in keep}
        if self.state_topic:
            stations: dict[str, bytes | None] = {}
            lines: dict[str, tuple[int, bytes | None]] = {}
            for message in self.published.get(self.state_topic, []):
                if message._key is None:
                    continue
                key = message._key.decode()
                if line_of_state_key(key) is not None:
                    if (self.line_topic, message._partition) in fresh:
                        lines[key] = (message._partition, message._value)
                elif (self.topic, message._partition) in fresh:
                    stations[key] = message._value
            listener.restore(
                {k: v for k, v in stations.items() if v is not None},
                {k: (p, v) for k, (p, v) in lines.items() if v is not None},
            )
        self._position = {}
        for item in assigned:
            start = item.committed
            log, committed, _count = self._source(item.topic)
            mark = committed.get(item.partition)
            if item.topic == self.topic and item.key in fresh and mark is not None:
                target = mark.timestamp_ms - self._horizon_ms
                messages = log.get(item.partition, [])
                start = next((m._offset for m in messages if m._timestamp_ms >= target), start)
                start = min(start, item.committed)
            self._position[item.key] = start

    def consume(self, max_messages: int, timeout_s: float) -> Sequence[SourceMessage]:
        """Up to ``max_messages``, an equal share from each partition with messages left (as a fetch
        from several partitions interleaves them), in partition order within the batch."""
        if self.closed:
            raise BrokerError("consume on a closed broker")
        out: list[SourceMessage] = []
        while len(out) < max_messages:
            open_partitions = [
                key for key in sorted(self._position) if self._position[key] < len(self._log_of(key))
            ]
            if not open_partitions:
                break
            if not self.interleave:
                open_partitions = open_partitions[:1]
            share = max(1, (max_messages - len(out)) // len(open_partitions))
            for key in open_partitions:
                begin = self._position[key]
                chunk = self._log_of(key)[begin : begin + min(share, max_messages - len(out))]
                out.extend(chunk)
                self._position[key] = begin + len(chunk)
        return out

    def _log_of(self, key: Partition) -> list[MemoryMessage]:
        log, _committed, _count = self._source(key[0])
        return log.get(key[1], [])

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
        if partition is None and topic == self.line_topic and key is not None:
            partition = zlib.crc32(key) % self.line_partitions
        self._staged.append(MemoryMessage(topic, partition or 0, -1, key, value, stamp, headers))

    def commit(self, marks: Mapping[Partition, Mark]) -> None:
        if self.fail_next_commit:
            from stream.ports import TransactionAbortedError

            self.fail_next_commit = False
            self._staged = []
            raise TransactionAbortedError("injected abort")
        for message in self._staged:
            self.published.setdefault(message._topic, []).append(message)
            if message._topic == self.line_topic:
                messages = self.line_log.setdefault(message._partition, [])
                messages.append(replace(message, _offset=len(messages)))
        self._staged = []
        for (topic, partition), mark in marks.items():
            self._source(topic)[1][partition] = mark

    def abort(self) -> None:
        self._staged = []

    def rewind(self) -> None:
        self.reassign()

    def lag(self) -> dict[int, int]:
        return {
            p: len(self._log_of((t, p))) - pos for (t, p), pos in self._position.items() if t == self.topic
        }

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    # -- reading back --------------------------------------------------------------------------
    def values(self, topic: str) -> list[bytes]:
        return [message._value or b"" for message in self.published.get(topic, [])]
