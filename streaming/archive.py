"""The lake path: ``process_batch`` archives one micro-batch of a pipeline's Kafka topics.

The archive query reads two topics: the pipeline's events and its alerts topic (written by the
detect path). Per micro-batch: parse and persist the events once; read the alerts, one per
``alert_id``; then the three Delta writes, committed concurrently: quarantine and bronze appends
(idempotent per batch through ``txnAppId``/``txnVersion``) and a merge of the alerts into silver
that inserts only ids it does not hold (the alerts topic is at-least-once). A failure past the
sinks' retries raises: the batch is not committed to the checkpoint and the restarted query
replays it, adding nothing twice. The alerts reach Postgres and Redis through the fan-out, in
milliseconds; the archive follows within its trigger interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from streaming import progress
from streaming.alerts import ALERT_COLUMNS, MESSAGE_SCHEMA, to_alerts
from streaming.parse import empty_kafka_frame, parse_kafka, quarantine_rows, valid_events
from streaming.pipeline import Paths, Pipeline
from streaming.rules import evaluate
from streaming.schema import Field
from streaming.sinks import delta

log = logging.getLogger(__name__)


@dataclass
class BatchContext:
    """Everything a micro-batch needs that outlives it (set up once by the job)."""

    pipeline: Pipeline
    paths: Paths
    alerts_topic: str
    query_id: str = ""
    run_id: int | None = None
    last: dict[str, Any] = field(default_factory=dict)
    small_batch_rows: int = 0  # below this many rows (last batch) a batch runs in one task
    # Records ever written to the events topic (the sum of its end offsets), when known: how
    # many arrived since the previous batch started bounds the size of this one.
    topic_end: Callable[[], int] | None = None
    last_topic_end: int | None = None

    @property
    def fields(self) -> list[Field]:
        return self.pipeline.fields


def table_frames(spark: SparkSession, ctx: BatchContext) -> dict[str, DataFrame]:
    """Empty frames with the exact schemas of the three Delta tables (to create them)."""
    parsed = parse_kafka(empty_kafka_frame(spark), ctx.fields, key_field=None, schema_version=0)
    events = valid_events(parsed, ctx.fields)
    return {
        "events": events,
        "quarantine": quarantine_rows(parsed, ctx.fields),
        "alerts": to_alerts(evaluate(events, []), ctx.fields, ctx.pipeline.id, F.lit(None)),
    }


def ensure_tables(spark: SparkSession, ctx: BatchContext) -> None:
    """Create the pipeline's three Delta tables empty when they do not exist yet."""
    frames = table_frames(spark, ctx)
    delta.ensure_table(frames["events"], ctx.paths.events, ["event_date"])
    delta.ensure_table(frames["quarantine"], ctx.paths.quarantine, ["quarantine_date"])
    delta.ensure_table(frames["alerts"], ctx.paths.alerts)


def alert_rows(kafka_df: DataFrame) -> DataFrame:
    """The alerts-topic records of a batch as silver rows (``ALERT_COLUMNS``), one per id.

    ``alert_timestamp`` is the record's Kafka timestamp: when the detect path emitted it.
    """
    msg = F.from_json(F.col("value").cast("string"), MESSAGE_SCHEMA)
    rows = kafka_df.select(msg.alias("m"), F.col("timestamp").alias("alert_timestamp"))
    return rows.select("m.*", "alert_timestamp").select(*ALERT_COLUMNS) \
        .dropDuplicates(["alert_id"])


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


def is_small(ctx: BatchContext, arrived: int | None = None) -> bool:
    """Whether this batch runs small: in one task, its writes one after another.

    Up to ~16,000 events/s (at the 60 s trigger) a batch is small, and what matters is that
    the archive leaves a core to the detect path (alert latency), not how fast it finishes
    within its trigger interval. Judged on the previous batch (the first one runs wide) and,
    when known, on the records that ``arrived`` on the topic since the previous batch started
    (a burst after a trickle would otherwise run its first batch of a million records in one
    task): a backlog's batches are large and run on every slot.
    """
    return (bool(ctx.last) and int(ctx.last.get("rows", 0)) < ctx.small_batch_rows
            and (arrived is None or arrived < ctx.small_batch_rows))


def _arrived(ctx: BatchContext) -> int | None:
    """Records that reached the events topic since the previous batch started: None without
    a ``topic_end`` (the previous batch alone decides); the threshold itself when there is no
    earlier figure or the broker cannot answer now, so the batch runs wide (never fails)."""
    if ctx.topic_end is None:
        return None
    previous = ctx.last_topic_end
    try:
        ctx.last_topic_end = ctx.topic_end()
    except Exception as exc:  # a sizing hint, never a reason to fail a batch
        log.warning("pipeline=%s: topic end offsets unknown (%s); batch runs wide",
                    ctx.pipeline.id, exc)
        ctx.last_topic_end = None
        return ctx.small_batch_rows
    # No earlier figure (the first batch, or the previous call failed): not known to be small.
    return ctx.small_batch_rows if previous is None else ctx.last_topic_end - previous


def _archive(ctx: BatchContext, parsed: DataFrame, alerts: DataFrame, *, batch_id: int,
             total: int, quarantined: int, n_alerts: int, min_offset: int,
             concurrent: bool = True) -> None:
    """Quarantine and bronze appends and the silver alerts merge.

    Three tables, three writer leases, three idempotent (txnAppId, txnVersion) commits: run side
    by side (``concurrent``) they overlap each commit's fixed cost (log listing, checksums, the
    lease round trip). Waits for all three; the first failure is re-raised after the others
    finished.
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
        writes.append(lambda: delta.merge_new(alerts, ctx.paths.alerts, key="alert_id",
                                              since=("kafka_offset", min_offset)))
    if len(writes) <= 1 or not concurrent:
        for write in writes:
            write()
        return
    with ThreadPoolExecutor(max_workers=len(writes), thread_name_prefix="archive") as pool:
        futures = [pool.submit(write) for write in writes]
    for future in futures:
        future.result()


# One archive batch at a time in a Spark application. Pipelines sharing an application have
# their triggers at the same instants (Spark aligns processing-time triggers to multiples of
# the interval), and ten archive batches at once took both cores from the detect queries. In
# turn they leave the cores to detect; the lake is minutes fresh either way.
_TURN = threading.Lock()


def process_batch(df: DataFrame, batch_id: int, *, ctx: BatchContext) -> dict[str, Any]:
    """Archive one micro-batch (after any other pipeline's batch in this application); returns
    its counts (also logged and recorded)."""
    with _TURN:
        return _process_batch(df, batch_id, ctx=ctx)


def _process_batch(df: DataFrame, batch_id: int, *, ctx: BatchContext) -> dict[str, Any]:
    started, t = time.monotonic(), _Phases()
    p = ctx.pipeline
    small = is_small(ctx, _arrived(ctx))
    if small:
        df = df.coalesce(1)
    parsed = parse_kafka(
        df.where(F.col("topic") == p.topic), ctx.fields, key_field=p.event_id_field,
        schema_version=p.schema_version,
    )
    # The raw bytes are kept only for quarantine: half the cached batch, at a 2 M-record cap.
    parsed = parsed.withColumn("value", F.when(~F.col("_valid"), F.col("value"))) \
        .persist(StorageLevel.MEMORY_AND_DISK)
    alerts = alert_rows(df.where(F.col("topic") == ctx.alerts_topic)).persist()
    try:
        # One job counts both (and materialises both caches).
        c = parsed.agg(F.count("*").alias("n"), F.count_if(~F.col("_valid")).alias("q")) \
            .crossJoin(alerts.agg(F.count("*").alias("a"), F.min("kafka_offset").alias("lo"))) \
            .first()
        total, quarantined = int(c["n"]), int(c["q"])
        n_alerts, min_offset = int(c["a"]), int(c["lo"] or 0)
        t.mark("read")
        _archive(ctx, parsed, alerts, batch_id=batch_id, total=total,
                 quarantined=quarantined, n_alerts=n_alerts, min_offset=min_offset,
                 concurrent=not small)
        t.mark("archive")
    finally:
        alerts.unpersist()
        parsed.unpersist()
    duration_ms = int((time.monotonic() - started) * 1000)
    stats = {
        "batch_id": batch_id, "rows": total, "valid": total - quarantined,
        "quarantined": quarantined, "alerts": n_alerts, "duration_ms": duration_ms,
        "rows_per_s": round(total / max(duration_ms, 1) * 1000, 1), "small": small,
    }
    ctx.last = stats
    if ctx.run_id is not None:
        progress.record_batch(ctx.run_id, batch_id=batch_id, rows=total, duration_ms=duration_ms,
                              alerts=n_alerts, quarantined=quarantined)
    log.info("pipeline=%s archive batch=%s %s phases=%s", p.id, batch_id,
             " ".join(f"{k}={v}" for k, v in stats.items() if k != "batch_id"), t)
    return stats
