"""Kafka topic administration for pipelines (the API never touches Spark)."""

from __future__ import annotations

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import InvalidTopicError, KafkaError, TopicAlreadyExistsError

from catalog.settings import Settings


class KafkaUnavailable(RuntimeError):
    """The broker could not be reached or refused the request (details for the log only)."""


class InvalidTopic(ValueError):
    """Kafka refused the topic name itself (the caller's input, not an outage)."""


def ensure_topic(settings: Settings, *, topic: str, partitions: int) -> bool:
    """Create `topic` if it does not exist; return True when it was created."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="sentinel-api",
            request_timeout_ms=10_000,
        )
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {settings.kafka_bootstrap_servers}: {exc}") from exc
    try:
        admin.create_topics(
            [
                NewTopic(
                    name=topic,
                    num_partitions=partitions,
                    replication_factor=settings.kafka_replication_factor,
                )
            ]
        )
        return True
    except TopicAlreadyExistsError:
        return False
    except InvalidTopicError as exc:
        raise InvalidTopic(f"Kafka refused the topic name {topic!r}") from exc
    except KafkaError as exc:
        raise KafkaUnavailable(f"creating topic {topic!r}: {exc}") from exc
    finally:
        admin.close()


def kafka_reachable(settings: Settings) -> bool:
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="sentinel-readyz",
            request_timeout_ms=3_000,
        )
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()
