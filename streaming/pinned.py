"""A pipeline's archive read as of one Delta version, over an event-time range.

Backtests and look-backs both read bronze pinned to its current version (later commits are not
seen, and the version is reported), with the stream's own event time (the schema's time field,
else the Kafka timestamp).
"""

from __future__ import annotations

from datetime import UTC, datetime

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from streaming.schema import Field, event_time_field


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The table's current Delta version, ``None`` when there is no table yet."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def read_pinned(spark: SparkSession, path: str) -> tuple[DataFrame | None, int | None]:
    """The table as of its current version (and that version): later commits are not seen."""
    version = latest_version(spark, path)
    if version is None:
        return None, None
    return spark.read.format("delta").option("versionAsOf", version).load(path), version


def event_time(fields: list[Field]) -> Column:
    """When the event happened, as the stream's alerts define it (``alerts.to_alerts``)."""
    name = event_time_field(fields)
    kafka = F.col("_kafka_timestamp")
    return F.coalesce(F.col(f"`{name}`"), kafka) if name else kafka


def utc_literal(value: datetime) -> Column:
    """A timestamp literal for an aware datetime (the session time zone is UTC)."""
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return F.lit(text).cast("timestamp")


def in_range(events: DataFrame, fields: list[Field], since: datetime, until: datetime
             ) -> DataFrame:
    """Events whose event time is in ``[since, until)``; ``event_date`` prunes partitions."""
    first, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
    ts = event_time(fields)
    return (
        events.where((F.col("event_date") >= F.lit(first)) & (F.col("event_date") <= F.lit(last)))
        .where((ts >= utc_literal(since)) & (ts < utc_literal(until)))
    )
