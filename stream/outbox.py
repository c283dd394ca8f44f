"""What one iteration of the loop publishes (in one transaction with its offsets), and what it counts.

``Outbox`` gathers the outgoing records of a batch (alerts, score records, dead letters, state
records, line records) as ``Outgoing`` values, the offsets to commit per source partition, and the
counts the metrics move by once the transaction is committed (never before: an aborted batch is
re-read, and would otherwise be counted twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detector.decisions import Pending
from detector.incidents import Alert
from stream.ports import Headers, Mark, Partition, SourceMessage


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce; ``value`` None is a tombstone, ``partition`` None lets the partitioner pick."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    partition: int | None = None


def dead_letter_headers(message: SourceMessage, reason: str, detail: str) -> Headers:
    """The original headers plus the reason, a short detail and where the message came from."""
    headers: Headers = [(name, value) for name, value in (message.headers() or ()) if value is not None]
    headers += [
        ("centinela.reason", reason.encode()),
        ("centinela.detail", detail.encode("utf-8", "replace")[:512]),
        ("centinela.source.topic", (message.topic() or "").encode()),
        ("centinela.source.partition", str(message.partition()).encode()),
        ("centinela.source.offset", str(message.offset()).encode()),
    ]
    return headers


@dataclass(slots=True)
class Outbox:
    """One batch: what it publishes, the offsets it commits, and the counts for after the commit."""

    windows: list[Pending] = field(default_factory=list)
    outputs: list[Outgoing] = field(default_factory=list)
    marks: dict[Partition, Mark] = field(default_factory=dict)  # (topic, partition) -> what to commit
    outcomes: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    scored: int = 0
    latencies_ms: list[int] = field(default_factory=list)
    scoring_s: float | None = None
    off_line: int = 0  # accepted readings of stations the topology does not know
    line_readings: int = 0  # readings fed to a line monitor

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        self.outputs.append(Outgoing(topic, key, value, headers, partition))

    def dead_letter(self, topic: str, message: SourceMessage, reason: str, detail: str) -> None:
        self.outputs.append(
            Outgoing(
                topic, message.key(), message.value() or b"", dead_letter_headers(message, reason, detail)
            )
        )
        self.dead[reason] = self.dead.get(reason, 0) + 1
