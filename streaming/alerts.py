"""Alerts: one per (event, matching rule), with an id every sink can deduplicate on.

``alert_id`` = sha256 hex of ``pipeline_id|rule_id|rule_version|event_id``: replaying a batch
(after a crash) yields the same ids, so Delta, Postgres and Redis writes stay idempotent, and
editing a rule (new version) legitimately alerts again on the same event.

On the alerts topic an alert is one JSON object (``alert_message``): the alert columns without
``alert_timestamp``, with ``transaction_data`` as the event object. The alert's time is the
Kafka record's timestamp, set when the detect path emitted it; every consumer reads it from
there (``message_row`` here, the lake path in ``archive``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from streaming.rules import MATCHED, RULE_META_COLUMNS
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


MESSAGE_COLUMNS = [c for c in ALERT_COLUMNS if c != "alert_timestamp"]
# How the lake path reads an alert message (``transaction_data`` kept as its JSON text).
MESSAGE_SCHEMA = (
    "alert_id string, pipeline_id int, rule_id int, rule_version int, severity string, "
    "score double, rule_description string, event_id string, event_time timestamp, "
    "transaction_data string, kafka_partition int, kafka_offset long"
)
ISO_MICROS = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"


def _columns(matches: DataFrame, fields: Sequence[Field], pipeline_id: int,
             data: Column, rule: dict[str, Column] | None = None) -> dict[str, Column]:
    """The message's columns; the rule's id and ``RULE_META_COLUMNS`` are the row's own (``MATCHED``
    and those names) unless ``rule`` gives them."""
    rule = {"rule_id": F.col(MATCHED), **{n: F.col(n) for n in RULE_META_COLUMNS}, **(rule or {})}
    time_field = event_time_field(fields)
    event_time = (
        F.coalesce(F.col(time_field), F.col("_kafka_timestamp"))
        if time_field
        else F.col("_kafka_timestamp")
    )
    pid = F.lit(pipeline_id)
    return {
        "alert_id": alert_id_column(pid, rule["rule_id"], rule["rule_version"],
                                    F.col("_event_id")),
        "pipeline_id": pid,
        "rule_id": rule["rule_id"],
        "rule_version": rule["rule_version"],
        "severity": rule["severity"],
        "score": rule["score"],
        "rule_description": rule["rule_description"],
        "event_id": F.col("_event_id"),
        "event_time": event_time,
        "transaction_data": data,
        "kafka_partition": F.col("_kafka_partition"),
        "kafka_offset": F.col("_kafka_offset"),
    }


def _event(fields: Sequence[Field]) -> Column:
    return F.struct(*[F.col(f"`{f.name}`") for f in fields])


def to_alerts(
    matches: DataFrame, fields: Sequence[Field], pipeline_id: int, alert_time: Column
) -> DataFrame:
    """The alert rows (``ALERT_COLUMNS``) from ``rules.evaluate`` output (backtests,
    look-backs); ``alert_time`` is one value for the whole batch."""
    cols = _columns(matches, fields, pipeline_id, F.to_json(_event(fields)))
    cols["alert_timestamp"] = alert_time.cast("timestamp")
    return matches.select(*[cols[name].alias(name) for name in ALERT_COLUMNS])


def alert_message(matches: DataFrame, fields: Sequence[Field], pipeline_id: int,
                  extra: dict[str, Column] | None = None,
                  rule: dict[str, Column] | None = None) -> Column:
    """The JSON text of each alert for the alerts topic (``MESSAGE_COLUMNS``, then ``extra``:
    keys the sinks do not read, e.g. the velocity path's ``late``); ``rule``: the rule's id
    and metadata when they are not the row's columns (see ``_columns``)."""
    cols = _columns(matches, fields, pipeline_id, _event(fields), rule)
    # The event keeps to_json's own timestamp format, as in ``to_alerts``.
    cols["event_time"] = F.date_format(cols["event_time"], ISO_MICROS)
    names = [*MESSAGE_COLUMNS, *(extra or {})]
    cols.update(extra or {})
    return F.to_json(F.struct(*[cols[name].alias(name) for name in names]))


def message_row(value: bytes, timestamp_ms: int) -> dict[str, Any]:
    """An alerts-topic record as the Postgres and Redis sinks take it (``ALERT_COLUMNS``)."""
    msg = json.loads(value)
    row = {name: msg.get(name) for name in MESSAGE_COLUMNS}
    row["transaction_data"] = json.dumps(msg.get("transaction_data"), separators=(",", ":"))
    row["alert_timestamp"] = datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat()
    return row
