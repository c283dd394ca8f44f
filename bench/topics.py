"""Throwaway topics for benchmarks: created with every partition led before timing starts."""

from __future__ import annotations

import uuid

from kafkakit.admin import delete_topics, ensure_topic


def create_bench_topic(bootstrap: str, prefix: str, partitions: int) -> str:
    """A new uniquely named topic; returns once every partition has a leader (or raises BrokerError)."""
    name = f"{prefix}.{uuid.uuid4().hex[:12]}"
    ensure_topic({"bootstrap.servers": bootstrap}, name, partitions, timeout_s=30.0)
    return name


def delete_bench_topic(bootstrap: str, name: str) -> None:
    delete_topics({"bootstrap.servers": bootstrap}, [name], timeout_s=30.0)
