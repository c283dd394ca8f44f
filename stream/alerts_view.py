"""Reading the alerts topic as an operator does: committed alerts only, filtered, as rows or JSON.

``committed_alerts`` reads with ``isolation.level=read_committed`` (an aborted transaction's alerts
never show) from the beginning of every partition, by assignment (no consumer group is joined and
nothing is committed, so looking never moves anyone's offsets). Without ``follow`` it stops at the
end the topic had when it started; with ``follow`` it goes on until ``stop`` is set.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detector.errors import BrokerError

_POLL_S = 0.5
_METADATA_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts to show; an empty field matches everything."""

    stations: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()

    def matches(self, alert: Mapping[str, Any]) -> bool:
        segment = alert.get("segment") or {}
        stations = {str(alert.get("station_id", ""))}
        if isinstance(segment, Mapping):
            stations |= {str(segment.get("upstream", "")), str(segment.get("downstream", ""))}
        segment_id = str(segment.get("segment_id", "")) if isinstance(segment, Mapping) else ""
        return (
            (not self.stations or bool(stations & self.stations))
            and (not self.segments or segment_id in self.segments)
            and (not self.kinds or str(alert.get("kind", "")) in self.kinds)
            and (not self.statuses or str(alert.get("status", "")) in self.statuses)
        )


def committed_alerts(
    client_config: Mapping[str, Any],
    topic: str,
    *,
    follow: bool = False,
    stop: threading.Event | None = None,
    timeout_s: float = 30.0,
) -> Iterator[dict[str, Any]]:
    """Every committed alert of ``topic`` in partition order (``BrokerError`` if it does not exist).

    Without ``follow``: until the ends the partitions had at the start, or ``timeout_s`` without
    progress. A record that is not a JSON object is yielded as ``{"undecodable": <text>}``."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    stop = stop or threading.Event()
    consumer = Consumer(
        {
            **{k: v for k, v in client_config.items() if k not in ("error_cb", "logger")},
            "group.id": "centinela-alerts-viewer",  # required by the client; never joined (assign)
            "isolation.level": "read_committed",
            "enable.auto.commit": "false",
            "log_level": 3,
        }
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=_METADATA_TIMEOUT_S)
        except KafkaException as error:
            raise BrokerError(f"cannot read topic {topic}: {error.args[0].str()}") from error
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise BrokerError(f"topic {topic} does not exist (see `centinela topics check`)")
        partitions = [TopicPartition(topic, p, 0) for p in sorted(found.partitions)]
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=_METADATA_TIMEOUT_S)[1]
            for tp in partitions
        }
        consumer.assign(partitions)
        remaining = {p for p, end in ends.items() if end > 0}
        last_progress = time.monotonic()
        while not stop.is_set() and (follow or remaining):
            messages = consumer.consume(1000, timeout=_POLL_S)
            for message in messages:
                if message.error() is not None:
                    continue
                yield _decode(message.value())
            if messages:
                last_progress = time.monotonic()
            # Transaction markers occupy offsets too: done at the position, not at the last record.
            for tp in consumer.position(partitions):
                if tp.offset >= ends[tp.partition]:
                    remaining.discard(tp.partition)
            if not follow and time.monotonic() - last_progress > timeout_s:
                raise BrokerError(f"reading {topic} made no progress for {timeout_s:g} s")
    finally:
        consumer.close()


def _decode(value: bytes | None) -> dict[str, Any]:
    text = (value or b"").decode("utf-8", "replace")
    try:
        decoded = json.loads(text)
    except ValueError:
        return {"undecodable": text}
    return decoded if isinstance(decoded, dict) else {"undecodable": text}


COLUMNS = ("window_end", "kind", "status", "where", "severity", "score", "estimate", "incident_id")


def alert_row(alert: Mapping[str, Any]) -> tuple[str, ...]:
    """One alert as the columns of ``COLUMNS`` (strings, for a table)."""
    segment = alert.get("segment")
    where = str(alert.get("station_id", "?"))
    if isinstance(segment, Mapping) and segment.get("segment_id"):
        where = str(segment["segment_id"])
    if alert.get("sensor"):
        where += f" {alert['sensor']}"
    estimate = alert.get("estimate")
    summary = ""
    if isinstance(estimate, Mapping):
        parts = []
        if estimate.get("rate_m3h") is not None:
            parts.append(f"{float(estimate['rate_m3h']):.1f} m3/h")
        if estimate.get("volume_m3") is not None:
            parts.append(f"{float(estimate['volume_m3']):.1f} m3")
        if estimate.get("location_km") is not None:
            sigma = estimate.get("location_sigma_km")
            at = f"km {float(estimate['location_km']):.1f}"
            parts.append(at + (f"±{float(sigma):.1f}" if sigma is not None else ""))
        summary = ", ".join(parts)
    score = alert.get("score")
    return (
        str(alert.get("window_end", "")),
        str(alert.get("kind", "")),
        str(alert.get("status", "")),
        where,
        str(alert.get("severity", "")),
        f"{float(score):.2f}" if isinstance(score, int | float) else "",
        summary,
        str(alert.get("incident_id", "")),
    )


def format_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Rows under ``COLUMNS`` headers, columns padded to their widest cell."""
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(COLUMNS)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return lines
