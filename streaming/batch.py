"""``process_batch``: one Kafka micro-batch through the whole engine (DESIGN §6).

Order: parse and persist once → reload rules if their version moved → evaluate all rules in
one pass → alerts to Postgres and Redis (visible to analysts and look-ups) → the archive: the
quarantine, bronze and alerts Delta appends, committed concurrently → progress row →
unpersist. Alerts reach the serving sinks before the archive commits because those appends
take most of a batch's fixed cost; exactly-once is unchanged, since every sink is idempotent
per batch (alert ids, Redis markers, Delta ``txnAppId``/``txnVersion``): any failure past its
retries raises, the batch is not committed to the checkpoint and the restarted query replays
it into all sinks without duplicates. For a few seconds an alert can thus name an event that
the bronze table does not show yet.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from streaming import progress
from streaming.alerts import to_alerts
from streaming.parse import parse_kafka, quarantine_rows, valid_events
from streaming.pipeline import Paths, Pipeline
from streaming.rules import RuleCache, evaluate
from streaming.schema import Field
from streaming.sinks import delta, postgres
from streaming.sinks.redis_sink import RedisAlertSink

log = logging.getLogger(__name__)
ISO = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
_TIMES = ("event_time", "alert_timestamp")
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, "
    "timestamp timestamp, timestampType int"
)


@dataclass
class BatchContext:
    """Everything a micro-batch needs that outlives it (set up once by the job)."""

    pipeline: Pipeline
    paths: Paths
    query_id: str
    rules: RuleCache
    redis: RedisAlertSink | None = None
    run_id: int | None = None
    fields: list[Field] = field(init=False)
    last: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fields = self.pipeline.fields


def empty_kafka_frame(spark: SparkSession) -> DataFrame:
    """A Kafka-source-shaped empty DataFrame, built without Python workers."""
    return spark.range(0).selectExpr(
        *[f"CAST(NULL AS {t}) AS {n}" for n, t in (c.split() for c in KAFKA_SCHEMA.split(", "))]
    )


def _collect_alerts(alerts: DataFrame) -> list[dict[str, Any]]:
    """The batch's alerts as plain dicts, timestamps as ISO-8601 UTC text."""
    as_text = alerts.select(
        *[F.date_format(c, ISO).alias(c) if c in _TIMES else F.col(c) for c in alerts.columns]
    )
    return [r.asDict() for r in as_text.collect()]


def table_frames(spark: SparkSession, ctx: BatchContext) -> dict[str, DataFrame]:
    """Empty frames with the exact schemas of the three Delta tables (to create them)."""
    parsed = parse_kafka(empty_kafka_frame(spark), ctx.fields, key_field=None, schema_version=0)
    events = valid_events(parsed, ctx.fields)
    return {
        "events": events,
        "quarantine": quarantine_rows(parsed, ctx.fields),
        "alerts": to_alerts(evaluate(events, []), ctx.fields, ctx.pipeline.id, F.lit(None)),
    }


class _Phases:
    """Seconds spent per step of a batch, for the one-line batch log."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.spent: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.spent[name] = round(now - self.last, 2)
        self.last = now

    def __str__(self) -> str:
        return ",".join(f"{k}:{v}" for k, v in self.spent.items())


def _evaluate(ctx: BatchContext, events: DataFrame, now: datetime) -> tuple:
    """(active rules, persisted alerts, alert rows); a rule failing at run time is dropped."""
    active = ctx.rules.refresh(events)
    for attempt in (1, 2):
        alerts = to_alerts(evaluate(events, active), ctx.fields, ctx.pipeline.id, F.lit(now))
        alerts = alerts.persist()
        try:
            return active, alerts, _collect_alerts(alerts)
        except PySparkException as exc:
            alerts.unpersist()
            if attempt == 2 or not active:
                raise
            log.warning("rule evaluation failed, isolating the failing rule: %s",
                        str(exc).splitlines()[0])
            active = ctx.rules.drop_failing(events)
    raise AssertionError("unreachable")


def _archive(ctx: BatchContext, parsed: DataFrame, alerts: DataFrame, *, batch_id: int,
             total: int, quarantined: int, n_alerts: int) -> None:
    """Quarantine, bronze and alerts Delta appends of the batch, committed concurrently.

    Three tables, three writer leases, three idempotent (txnAppId, txnVersion) commits: run side
    by side they overlap each commit's fixed cost (log listing, checksums, the lease round
    trip). Waits for all three; the first failure is re-raised after the others finished.
    """
    common = {"query_id": ctx.query_id, "batch_id": batch_id}
    writes = []
    if quarantined:
        writes.append(lambda: delta.append(
            quarantine_rows(parsed, ctx.fields), ctx.paths.quarantine, table="quarantine",
            partition_by=["quarantine_date"], **common))
    if total > quarantined:
        writes.append(lambda: delta.append(
            valid_events(parsed, ctx.fields), ctx.paths.events, table="events",
            partition_by=["event_date"], merge_schema=True, **common))
    if n_alerts:
        writes.append(lambda: delta.append(alerts, ctx.paths.alerts, table="alerts", **common))
    if len(writes) <= 1:
        for write in writes:
            write()
        return
    with ThreadPoolExecutor(max_workers=len(writes), thread_name_prefix="archive") as pool:
        futures = [pool.submit(write) for write in writes]
    for future in futures:
        future.result()


def process_batch(df: DataFrame, batch_id: int, *, ctx: BatchContext) -> dict[str, Any]:
    """Process one micro-batch; returns its counts (also logged and recorded)."""
    started, t = time.monotonic(), _Phases()
    now = datetime.now(UTC).replace(tzinfo=None)  # alert_timestamp of the batch (UTC)
    p = ctx.pipeline
    parsed = parse_kafka(
        df, ctx.fields, key_field=p.event_id_field, schema_version=p.schema_version
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = parsed.agg(F.count("*").alias("n"), F.count_if(~F.col("_valid")).alias("q"))
        counts = counts.first()
        total, quarantined = int(counts["n"]), int(counts["q"])
        t.mark("parse")
        active, alerts, rows = _evaluate(ctx, valid_events(parsed, ctx.fields), now)
        t.mark("rules")
        try:
            new_pg = postgres.write_alerts(rows)
            t.mark("pg")
            new_redis = ctx.redis.write_alerts(rows) if ctx.redis else 0
            t.mark("redis")
            _archive(ctx, parsed, alerts, batch_id=batch_id, total=total,
                     quarantined=quarantined, n_alerts=len(rows))
            t.mark("archive")
        finally:
            alerts.unpersist()
        n_alerts = len(rows)
    finally:
        parsed.unpersist()
    duration_ms = int((time.monotonic() - started) * 1000)
    stats = {
        "batch_id": batch_id, "rows": total, "valid": total - quarantined,
        "quarantined": quarantined, "rules": len(active), "rule_errors": len(ctx.rules.errors),
        "alerts": n_alerts, "new_pg": new_pg, "new_redis": new_redis,
        "duration_ms": duration_ms,
        "rows_per_s": round(total / max(duration_ms, 1) * 1000, 1),
    }
    ctx.last = stats
    if ctx.run_id is not None:
        progress.record_batch(ctx.run_id, batch_id=batch_id, rows=total, duration_ms=duration_ms,
                              alerts=n_alerts, quarantined=quarantined)
    log.info("pipeline=%s batch=%s %s phases=%s", p.id, batch_id,
             " ".join(f"{k}={v}" for k, v in stats.items() if k != "batch_id"), t)
    return stats
