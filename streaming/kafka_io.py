"""How the engine's Spark queries read and write Kafka records: one place for the connection
and the options every reader shares, so the stream sources, the batch reads (a rule's gap, the
recent events a failing rule is looked for in) and the batch writes cannot drift apart."""

from __future__ import annotations

import json

from pyspark.sql import DataFrame, SparkSession

# A position in a topic: "earliest"/"latest", or an offset per partition.
Offsets = str | dict[int, int]

# How long the broker may hold a fetch that finds nothing new. Reads of known offset ranges
# (micro-batches, batch reads) want the answer at once: the client's 500 ms default held the
# fetch at the end of every partition, ~0.5 s per partition per batch (an archive batch of 300
# records over two 3-partition topics spent 5-7 s reading). The real-time detect source keeps
# the default: there the held fetch is the long poll that wakes when a record arrives.
RANGE_FETCH_WAIT_MS = 10


def _offsets(topic: str, at: Offsets) -> str:
    return at if isinstance(at, str) else json.dumps({topic: {str(p): o for p, o in at.items()}})


def stream_records(spark: SparkSession, *, bootstrap: str, topics: list[str],
                   max_offsets: int | None = None) -> DataFrame:
    """A stream of the records of ``topics`` from their earliest offsets (a checkpoint, when
    the query has one, decides where it resumes). Records the broker deleted before they were
    read are skipped, not fatal; ``max_offsets`` caps a micro-batch (the real-time mode refuses
    it; a micro-batch stream, which reads known ranges, also gets ``RANGE_FETCH_WAIT_MS``)."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "false")
    )
    if max_offsets is not None:
        reader = (reader.option("maxOffsetsPerTrigger", str(max_offsets))
                  .option("kafka.fetch.max.wait.ms", str(RANGE_FETCH_WAIT_MS)))
    return reader.load()


def read_records(spark: SparkSession, *, bootstrap: str, topic: str, start: Offsets,
                 end: Offsets = "latest") -> DataFrame:
    """The records of ``topic`` from ``start`` to ``end`` (exclusive), read once."""
    return (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", _offsets(topic, start))
        .option("endingOffsets", _offsets(topic, end))
        .option("failOnDataLoss", "false")
        .option("kafka.fetch.max.wait.ms", str(RANGE_FETCH_WAIT_MS))
        .load()
    )


def write_records(records: DataFrame, *, bootstrap: str, topic: str | None) -> None:
    """Write ``(key, value)`` rows to ``topic`` (a batch write); with ``topic=None`` each row
    goes to the topic in its ``topic`` column."""
    writer = (records.write.format("kafka").mode("append")
              .option("kafka.bootstrap.servers", bootstrap))
    if topic is not None:
        writer = writer.option("topic", topic)
    writer.save()
