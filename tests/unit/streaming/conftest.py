"""One local SparkSession (no jars, no Delta) shared by the streaming unit tests."""

from __future__ import annotations

import datetime as dt

import pytest

KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, "
    "timestamp timestamp, timestampType int"
)
KAFKA_TS = dt.datetime(2026, 3, 1, 10, 0, 0)


@pytest.fixture(scope="module")
def spark(spark_slot):
    """Started by the first module that needs it and kept while no other suite's driver runs."""
    import os

    from streaming.session import build_session

    os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1")
    return spark_slot.acquire("unit", lambda: build_session(
        "sentinel-unit-tests", delta=False, jars=False, shuffle_partitions=2))


@pytest.fixture()
def kafka_df(spark):
    """Build a Kafka-shaped DataFrame from a list of raw values (offsets 0..n-1)."""

    def make(values: list[bytes | None], topic: str = "t", partition: int = 0):
        rows = [(None, v, topic, partition, i, KAFKA_TS, 0) for i, v in enumerate(values)]
        return spark.createDataFrame(rows, KAFKA_SCHEMA)

    return make
