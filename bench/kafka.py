"""``bench kafka``: bare confluent-kafka produce and consume loops, the ceilings of replay and detector.

1 M messages of 200 bytes (``--quick``: 100 k) through a fresh 6-partition topic on the local broker
(started for the run if none runs, stopped after) or ``KAFKA_BOOTSTRAP_SERVERS``. Each repetition
produces into a new topic, then reads it back in a one-member consumer group; medians of 3.
"""

from __future__ import annotations

import logging
import random
import statistics
import time
import uuid

from bench.record import BenchResult, Stopwatch, rate
from bench.topics import create_bench_topic, delete_bench_topic
from detector.errors import BrokerError
from devtools import broker as local_broker

logger = logging.getLogger(__name__)

MESSAGES = 1_000_000
QUICK_MESSAGES = 100_000
MESSAGE_BYTES = 200
PARTITIONS = 6
REPETITIONS = 3
# consume() waits until it has this many messages or times out; 10,000 made each call wait for
# several fetches with default fetch settings (163 k/s against 350 k/s with 1,000, same run).
CONSUME_BATCH = 1_000
# Producer settings a throughput-minded client would use; nothing exotic, no compression.
PRODUCER_CONFIG: dict[str, str | int | float | bool] = {
    "linger.ms": 5,
    "acks": "all",
    "compression.type": "none",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "delivery.report.only.error": True,
}


def produce_loop(bootstrap: str, topic: str, count: int, payload: bytes) -> float:
    """Messages per second of a plain ``produce`` loop, until every message is acknowledged."""
    from confluent_kafka import KafkaError, Message, Producer

    failures: list[str] = []

    def on_error(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG, "on_delivery": on_error})
    produce, poll = producer.produce, producer.poll
    with Stopwatch() as watch:
        for index in range(count):
            while True:
                try:
                    produce(topic, payload)
                    break
                except BufferError:
                    # Local queue full: the broker is behind; wait for acknowledgements, retry.
                    poll(0.05)
            if index % 10_000 == 0:
                poll(0)
        left = producer.flush(120)
    if left or failures:
        raise BrokerError(f"produce loop: {left} undelivered, {len(failures)} failed ({failures[:3]})")
    return rate(count, watch.seconds)


def consume_loop(bootstrap: str, topic: str, count: int) -> float:
    """Messages per second of a plain ``consume`` loop, from the first message to the last.

    The group join before the first message is left out: it is a fixed cost, not throughput.
    """
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-kafka-{uuid.uuid4().hex[:12]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10_000,
        }
    )
    try:
        consumer.subscribe([topic])
        received = 0
        first: float | None = None
        deadline = time.monotonic() + 300
        while received < count:
            if time.monotonic() > deadline:
                raise BrokerError(f"consume loop: {received} of {count} messages after 300 s")
            batch = consumer.consume(num_messages=CONSUME_BATCH, timeout=1.0)
            if batch and first is None:
                first = time.perf_counter()
            received += sum(1 for message in batch if message.error() is None)
        last = time.perf_counter()
    finally:
        consumer.close()
    assert first is not None
    return rate(count, last - first)


def run(quick: bool) -> BenchResult:
    count = QUICK_MESSAGES if quick else MESSAGES
    payload = random.Random(20260101).randbytes(MESSAGE_BYTES)
    produced: list[float] = []
    consumed: list[float] = []
    with local_broker.provide() as broker:
        logger.info("bench kafka on %s", broker.describe())
        for repetition in range(REPETITIONS):
            topic = create_bench_topic(broker.bootstrap, "bench.kafka", PARTITIONS)
            try:
                produced.append(produce_loop(broker.bootstrap, topic, count, payload))
                consumed.append(consume_loop(broker.bootstrap, topic, count))
            finally:
                delete_bench_topic(broker.bootstrap, topic)
            logger.info(
                "repetition %d: produce %.0f/s, consume %.0f/s", repetition + 1, produced[-1], consumed[-1]
            )
    return BenchResult(
        name="kafka",
        figures={
            "produce_per_s": statistics.median(produced),
            "consume_per_s": statistics.median(consumed),
            "produce_mb_per_s": statistics.median(produced) * MESSAGE_BYTES / 1e6,
        },
        notes=(
            f"{broker.describe()}; {count:,} messages x {MESSAGE_BYTES} B, {PARTITIONS} partitions, "
            f"no keys, acks=all, linger.ms=5, no compression; consume batches of {CONSUME_BATCH}; "
            f"medians of {REPETITIONS} "
            f"(produce {', '.join(f'{v:,.0f}' for v in produced)}; "
            f"consume {', '.join(f'{v:,.0f}' for v in consumed)})"
        ),
    )
