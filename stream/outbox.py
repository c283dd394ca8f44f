"""What one iteration of the loop publishes (in one transaction with its offsets), and what it counts.

``Outbox`` gathers a batch's dead letters (``Outgoing`` values, with the headers that say why and
where from), what the core decided (``detector.engine.Outputs``: alerts, score records, state
records, line records, and the counts), the offsets to commit per source partition and the scoring
time. The metrics move by it once the transaction is committed (never before: an aborted batch is
re-read, and would otherwise be counted twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detector.engine import Outputs
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
    """One batch: what it publishes (dead letters first, then the core's records), the offsets it
    commits, and the counts for after the commit."""

    dead_letters: list[Outgoing] = field(default_factory=list)
    decided: Outputs = field(default_factory=Outputs)
    marks: dict[Partition, Mark] = field(default_factory=dict)  # (topic, partition) -> what to commit
    dead: dict[str, int] = field(default_factory=dict)  # dead letters by reason
    scoring_s: float | None = None

    def dead_letter(self, topic: str, message: SourceMessage, reason: str, detail: str) -> None:
        self.dead_letters.append(
            Outgoing(
                topic, message.key(), message.value() or b"", dead_letter_headers(message, reason, detail)
            )
        )
        self.dead[reason] = self.dead.get(reason, 0) + 1

    def empty(self) -> bool:
        """Nothing to publish and no offset to commit (an idle poll, a batch of re-read readings)."""
        return not (self.dead_letters or self.decided.records or self.marks)
