"""Alerts: one per (event, matching rule), with an id every sink can deduplicate on.

``alert_id`` = sha256 hex of ``pipeline_id|rule_id|rule_version|event_id``: replaying a batch
(after a crash) yields the same ids, so Delta, Postgres and Redis writes stay idempotent, and
editing a rule (new version) legitimately alerts again on the same event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from streaming.rules import MATCHED
from streaming.schema import Field, event_time_field

ALERT_COLUMNS = [
    "alert_id",
    "pipeline_id",
    "rule_id",
    "rule_version",
    "severity",
    "score",
    "rule_description",
    "event_id",
    "event_time",
    "alert_timestamp",
    "transaction_data",
    "kafka_partition",
    "kafka_offset",
]


def alert_id_column(
    pipeline_id: Column, rule_id: Column, version: Column, event_id: Column
) -> Column:
    """The deterministic alert id as a Spark column."""
    parts = [c.cast("string") for c in (pipeline_id, rule_id, version, event_id)]
    return F.sha2(F.concat_ws("|", *parts), 256)


def alert_id(pipeline_id: int, rule_id: int, rule_version: int, event_id: str) -> str:
    """The same id computed in plain Python (tests, API look-ups)."""
    raw = f"{pipeline_id}|{rule_id}|{rule_version}|{event_id}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def to_alerts(
    matches: DataFrame, fields: Sequence[Field], pipeline_id: int, alert_time: Column
) -> DataFrame:
    """The alert rows (``ALERT_COLUMNS``) from ``rules.evaluate`` output.

    ``alert_time`` is one value for the whole batch, so every sink stores the same timestamp.
    """
    time_field = event_time_field(fields)
    event_time = (
        F.coalesce(F.col(time_field), F.col("_kafka_timestamp"))
        if time_field
        else F.col("_kafka_timestamp")
    )
    data = F.to_json(F.struct(*[F.col(f"`{f.name}`") for f in fields]))
    pid = F.lit(pipeline_id)
    return matches.select(
        alert_id_column(pid, F.col(MATCHED), F.col("rule_version"), F.col("_event_id"))
        .alias("alert_id"),
        pid.alias("pipeline_id"),
        F.col(MATCHED).alias("rule_id"),
        "rule_version",
        "severity",
        "score",
        "rule_description",
        F.col("_event_id").alias("event_id"),
        event_time.alias("event_time"),
        alert_time.cast("timestamp").alias("alert_timestamp"),
        data.alias("transaction_data"),
        F.col("_kafka_partition").alias("kafka_partition"),
        F.col("_kafka_offset").alias("kafka_offset"),
    )
