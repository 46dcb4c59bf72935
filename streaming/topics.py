"""The Kafka topics the engine reads and creates: partition counts, the alerts topic."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError


def partitions(bootstrap: str, topic: str, *, timeout: float = 30.0) -> int:
    """How many partitions ``topic`` has (waits for it to appear up to ``timeout``)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="sentinel-topics")
    try:
        deadline = time.monotonic() + timeout
        while not (parts := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise LookupError(f"Kafka topic {topic!r} does not exist")
            time.sleep(0.5)
            consumer.topics()  # refreshes the metadata
        return len(parts)
    finally:
        consumer.close()


def ensure_topic(bootstrap: str, topic: str, *, partitions: int, replication: int) -> bool:
    """Create ``topic`` when missing; True when it was created."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sentinel-topics",
                             request_timeout_ms=20_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                      replication_factor=replication)])
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The next offset of each partition of ``topic`` (what a new record would get)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="sentinel-topics")
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: end for tp, end in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def offsets_since(bootstrap: str, topic: str, since_ms: int) -> dict[int, tuple[int, int]]:
    """Per partition of ``topic``: (first offset whose record time is >= ``since_ms``, end
    offset); both the end offset when the partition holds no such record."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="sentinel-topics")
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        firsts = consumer.offsets_for_times(dict.fromkeys(parts, since_ms))
        ends = consumer.end_offsets(parts)
        return {tp.partition: (ends[tp] if found is None else min(found.offset, ends[tp]),
                               ends[tp]) for tp, found in firsts.items()}
    finally:
        consumer.close()
