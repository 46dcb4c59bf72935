"""The engine this project replaced, kept only as a benchmark baseline: one micro-batch does
everything in turn (parse and persist → all rules in one projection → collect the alerts →
Postgres → Redis → quarantine, bronze and alerts Delta appends). Every alert waited for the
whole batch, the Delta commits included.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from streaming.alerts import ISO_MICROS, to_alerts
from streaming.parse import parse_kafka, quarantine_rows, valid_events
from streaming.pipeline import Paths, Pipeline
from streaming.rules import Rule, evaluate
from streaming.sinks import delta, postgres
from streaming.sinks.redis_sink import RedisAlertSink

_TIMES = ("event_time", "alert_timestamp")


def old_batch(df: DataFrame, batch_id: int, *, pipeline: Pipeline, rules: list[Rule],
              paths: Paths, redis: RedisAlertSink) -> int:
    """One micro-batch of the old engine; returns the number of alerts."""
    now = datetime.now(UTC).replace(tzinfo=None)
    fields = pipeline.fields
    parsed = parse_kafka(df, fields, key_field=pipeline.event_id_field,
                         schema_version=pipeline.schema_version).persist(
        StorageLevel.MEMORY_AND_DISK)
    try:
        events = valid_events(parsed, fields)
        alerts = to_alerts(evaluate(events, rules), fields, pipeline.id, F.lit(now)).persist()
        rows = [r.asDict() for r in alerts.select(
            *[F.date_format(c, ISO_MICROS).alias(c) if c in _TIMES else F.col(c)
              for c in alerts.columns]).collect()]
        postgres.write_alerts(rows)
        redis.write_alerts(rows)
        common = {"query_id": "bench-old", "batch_id": batch_id}
        delta.append(quarantine_rows(parsed, fields), paths.quarantine, table="quarantine",
                     partition_by=["quarantine_date"], **common)
        delta.append(events, paths.events, table="events", partition_by=["event_date"],
                     **common)
        if rows:
            delta.append(alerts, paths.alerts, table="alerts", **common)
        alerts.unpersist()
        return len(rows)
    finally:
        parsed.unpersist()
