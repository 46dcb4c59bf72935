"""Look-back on activation: a new rule alerts on the archive of its last N days.

Runs outside the live stream, on bronze pinned to one Delta version, over events whose event
time is in ``[activation − N days, activation)`` and that were archived before the rule was
created (later ones are the stream's job). The alerts are the stream's own
(``rules.evaluate`` → ``alerts.to_alerts``, alert id = hash of pipeline, rule, version, event)
and go through the stream's sinks: Postgres ``ON CONFLICT DO NOTHING``, Redis (idempotent by
alert id), and the silver Delta alerts with a MERGE on ``alert_id`` under the table's writer
lease. Running a look-back twice, or after the stream alerted on some of the same events,
therefore doubles nothing. The stream itself is not touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from catalog.rules.problems import RuleValidationError
from catalog.settings import get_settings
from catalog.writer_lease import writer_lease
from streaming import backtest_jobs as jobs
from streaming.alerts import ISO_MICROS as ISO
from streaming.alerts import to_alerts
from streaming.backtest_jobs import BacktestError
from streaming.pinned import read_pinned, utc_literal
from streaming.pipeline import Paths, Pipeline
from streaming.rules import Rule, analyse, evaluate
from streaming.sinks import postgres
from streaming.sinks.redis_sink import RedisAlertSink
from streaming.velocity_batch import rule_events

log = logging.getLogger(__name__)
CHUNK = 20_000
_TIMES = ("event_time", "alert_timestamp")


def _chunks(alerts: DataFrame) -> Iterator[list[dict[str, Any]]]:
    """The alerts as the sinks take them (timestamps as ISO text), ``CHUNK`` rows at a time."""
    text = alerts.select(
        *[F.date_format(c, ISO).alias(c) if c in _TIMES else F.col(c) for c in alerts.columns]
    )
    chunk: list[dict[str, Any]] = []
    for row in text.toLocalIterator():
        chunk.append(row.asDict())
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def merge_alerts(alerts: DataFrame, path: str, owner: str) -> int:
    """Insert the alerts whose id the Delta table lacks (under its writer lease)."""
    from delta.tables import DeltaTable

    spark = alerts.sparkSession
    with writer_lease(path, owner=owner, timeout=600):
        if not DeltaTable.isDeltaTable(spark, path):
            alerts.write.format("delta").mode("append").save(path)
            return alerts.count()
        metrics = (
            DeltaTable.forPath(spark, path).alias("t")
            .merge(alerts.alias("s"), "t.alert_id = s.alert_id")
            .whenNotMatchedInsertAll()
            .execute()
        )
    first = metrics.first() if metrics is not None else None
    return int(first["num_inserted_rows"]) if first is not None else -1


def lookback(spark: SparkSession, pipeline: Pipeline, paths: Paths, job: jobs.Job,
             redis_sink: RedisAlertSink | None = None) -> tuple[int | None, dict[str, Any]]:
    """``(bronze Delta version read, results)``: the look-back's alerts, written idempotently."""
    if job.rule_id is None or job.rule_version is None:
        raise BacktestError(f"look-back {job.id} names no rule")
    at = jobs.rule_for_lookback(job.rule_id, job.rule_version)
    rule = Rule(at.id, at.expression, at.severity, at.score, at.description, at.version)
    bronze, version = read_pinned(spark, paths.events)
    base = {"rule_id": rule.id, "rule_version": rule.version}
    if bronze is None:
        return None, dict(base, events_scanned=0, hits=0, alerts=0,
                          written={"postgres": 0, "redis": 0, "delta": 0},
                          note=f"no archived events yet (no Delta table at {paths.events})")
    archived = bronze.where(F.col("_ingested_at") < utc_literal(job.until))
    try:
        events, expression = rule_events(spark, archived, paths.quarantine, pipeline.fields,
                                         rule.expression, job.since, job.until)
    except RuleValidationError as exc:
        raise BacktestError(f"rule {rule.id} is not a valid rule any more: {exc}") from None
    rule = replace(rule, expression=expression)  # a velocity rule's condition over its terms
    error = analyse(events, rule)
    if error:
        raise BacktestError(f"rule {rule.id} does not analyse on the archived events: {error}")
    now = datetime.now(UTC).replace(tzinfo=None)  # as the stream: one alert time per run
    alerts = to_alerts(evaluate(events, [rule]), pipeline.fields, pipeline.id, F.lit(now))
    # One alert per id, as the stream's first sighting (earliest event, then Kafka position).
    first = Window.partitionBy("alert_id").orderBy("event_time", "kafka_partition",
                                                   "kafka_offset")
    alerts = (alerts.withColumn("_n", F.row_number().over(first)).where("_n = 1").drop("_n")
              .persist())
    if redis_sink is None:
        s = get_settings()
        redis_sink = RedisAlertSink.from_url(s.redis_dsn, ttl_seconds=s.redis_alert_ttl_seconds,
                                             stream_maxlen=s.redis_stream_maxlen)
    try:
        n = new_pg = new_redis = new_delta = 0
        for chunk in _chunks(alerts):
            n += len(chunk)
            new_pg += postgres.write_alerts(chunk)
            new_redis += redis_sink.write_alerts(chunk)
        if n:
            new_delta = merge_alerts(alerts, paths.alerts, owner=f"lookback {job.id}")
        scanned = events.count()
    finally:
        alerts.unpersist()
    log.info("look-back %s rule %s: %d alerts (new: pg %d, redis %d, delta %d) over %d events",
             job.id, rule.id, n, new_pg, new_redis, new_delta, scanned)
    return version, dict(base, events_scanned=scanned, hits=n, alerts=n,
                         written={"postgres": new_pg, "redis": new_redis, "delta": new_delta})
