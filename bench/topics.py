"""Throwaway topics for benchmarks: created with every partition led before timing starts."""

from __future__ import annotations

import time
import uuid

from detector.errors import BrokerError

# Notices such as "purging unserved events" on closing an admin client are noise here.
ADMIN_CONFIG: dict[str, str | int | float | bool] = {"log_level": 4}


def create_bench_topic(bootstrap: str, prefix: str, partitions: int) -> str:
    """A new uniquely named topic; returns once every partition has a leader (or raises BrokerError)."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    name = f"{prefix}.{uuid.uuid4().hex[:12]}"
    admin = AdminClient(ADMIN_CONFIG | {"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return name
        time.sleep(0.05)
    raise BrokerError(f"bench topic {name} got no leaders within 30 s")


def delete_bench_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(ADMIN_CONFIG | {"bootstrap.servers": bootstrap})
    admin.delete_topics([name])[name].result(30)
