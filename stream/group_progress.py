"""How far a consumer group has got: used by the demo, the sim suite, benchmarks and tests to wait
for a detector to finish a replay."""

from __future__ import annotations


def committed_to_end(bootstrap: str, group: str, topic: str, *, transactional: bool = False) -> bool:
    """Whether ``group`` has committed every partition of ``topic`` up to its current end.

    ``transactional``: ``topic`` is written in transactions (the service's internal line topic,
    ``<readings>.line``): its last offset is the last transaction's commit marker, which no consumer
    commits past, so one offset short of the end is the end. A detector with a line in its bundle
    has finished a replay once both its readings and its line topic are committed to the end.

    A transient Kafka error (the group coordinator moving, a timeout under load) answers False:
    callers poll, and one such error once crashed a 15-minute ``evaluate sim`` run."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from stream.kafka_io import is_transient

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "log_level": 3}
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            if high > low and tp.offset < high - (1 if transactional else 0):  # empty: nothing to commit
                return False
        return True
    except KafkaException as error:
        if is_transient(error):  # the coordinator moving under load: not known yet, ask again
            return False
        raise
    finally:
        consumer.close()
