"""Sustained events/s of the engine's two paths vs a floor, the old engine and the seed's way.

    .venv/bin/python -m bench.throughput --batch 50000 --batches 3 --rules 1 10 50 100

One Kafka topic is filled once (the backlog). Every variant then reads it batch by batch with
bounded offset ranges, as the stream does with ``maxOffsetsPerTrigger``: first a small warm-up
batch (JVM code generation, table creation, first connections, rule analysis), then
``--batches`` timed batches of ``--batch`` events; events/s = timed events / timed seconds.
* floor   — Kafka read + JSON parse + count (a no-op sink);
* detect  — the detect path's projection (``streaming.detect.alert_records``: parse, N rules in
            one projection, alert JSON) written to an alerts topic with Spark's Kafka sink;
* archive — ``streaming.archive.process_batch`` on the events and the alerts detect wrote:
            quarantine + bronze appends and the silver alerts merge;
* old     — the engine this one replaced (``bench.old_engine``): parse, rules, alerts to
            Postgres and Redis, three Delta appends, all in one batch;
* seed    — Kafka read, parse/persist + bronze append, then per rule one filter and one Delta
            alerts write (the seed's approach); one timed batch (it is slow by design).
Needs the local stack (Kafka, Postgres, Redis) and writes to a throw-away warehouse.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.common import create_topic, drop_pipelines, make_pipeline
from bench.old_engine import old_batch
from catalog.settings import get_settings
from streaming.alerts import to_alerts
from streaming.archive import BatchContext, ensure_tables, process_batch
from streaming.detect import alert_records, alerts_topic
from streaming.kafka_io import read_records, write_records
from streaming.parse import parse_kafka, valid_events
from streaming.pipeline import Paths, load_pipeline
from streaming.producer import generate_events, send
from streaming.rules import evaluate, load_active_rules
from streaming.session import build_session
from streaming.sinks import delta
from streaming.sinks.redis_sink import RedisAlertSink
from streaming.topics import end_offsets

Range = tuple[dict[int, int], dict[int, int]]  # (start offsets, end offsets) per partition

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "user_id", "type": "long", "nullable": True},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "currency", "type": "string", "nullable": True},
    {"name": "merchant", "type": "string", "nullable": True},
    {"name": "event_time", "type": "timestamp", "nullable": False},
]


def rule_expression(i: int) -> str:
    return f"user_id = {i * 37 + 1} OR (amount > {200000 + i * 5000} AND currency = 'XX')"


def pipeline_with_rules(topic: str, n_rules: int) -> int:
    return make_pipeline(f"{topic}-{n_rules}", SCHEMA, [rule_expression(i) for i in range(n_rules)],
                         key_field="transaction_id")


def offset_ranges(ends: dict[int, int], sizes: list[int]) -> list[Range]:
    """Consecutive per-partition offset ranges for batches of (about) ``sizes`` events each.

    Each batch takes its share of every partition in proportion to the partition's size, as
    Spark's ``maxOffsetsPerTrigger`` does; the ranges never overlap and never pass ``ends``.
    """
    total = sum(ends.values())
    if sum(sizes) > total:
        raise ValueError(f"{sum(sizes)} events asked for, the topic holds {total}")
    cursor = dict.fromkeys(ends, 0)
    out: list[Range] = []
    taken = 0
    for size in sizes:
        taken += size
        start = dict(cursor)
        for part, end in ends.items():
            cursor[part] = min(end, round(end * taken / total))
        out.append((start, dict(cursor)))
    return out


def read_range(spark: SparkSession, topic: str, rng: Range) -> DataFrame:
    """The Kafka records of one batch (a bounded batch read, like one micro-batch)."""
    start, end = rng
    return read_records(spark, bootstrap=get_settings().kafka_bootstrap_servers, topic=topic,
                        start=start, end=end)


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` near-equal shares."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def batch_sizes(rng: Range) -> int:
    return sum(rng[1][p] - rng[0][p] for p in rng[0])


def sustained(variant: str, rules_n: int | None, ranges: list[Range],
              step: Callable[[int, Range], None]) -> dict:
    """Runs ``step`` on every range; the first is the warm-up, the rest are timed."""
    step(0, ranges[0])
    secs = 0.0
    for batch_id, rng in enumerate(ranges[1:], start=1):
        started = time.monotonic()
        step(batch_id, rng)
        secs += time.monotonic() - started
    n = sum(batch_sizes(r) for r in ranges[1:])
    label = variant if rules_n is None else f"{variant} {rules_n} rules"
    print(f"{label:<22} {len(ranges) - 1} x {n // (len(ranges) - 1):>7} events "
          f"{secs:8.2f} s {n / secs:10.0f} events/s", flush=True)
    return {"variant": variant, "rules": rules_n, "batches": len(ranges) - 1, "events": n,
            "seconds": round(secs, 3), "events_per_s": round(n / secs, 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=50_000, help="events per timed batch")
    ap.add_argument("--batches", type=int, default=3, help="timed batches per variant")
    ap.add_argument("--warmup", type=int, default=2_000, help="events in the warm-up batch")
    ap.add_argument("--rules", type=int, nargs="+", default=[1, 10, 50, 100])
    ap.add_argument("--skip-seed-above", type=int, default=50)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = run(args.batch, args.batches, args.warmup, args.rules, args.skip_seed_above)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


def fill_topic(n_events: int) -> tuple[str, dict[int, int]]:
    """A new two-partition topic holding ``n_events`` generated events (1 % malformed)."""
    settings = get_settings()
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    create_topic(topic, partitions=2)
    events = generate_events(SCHEMA, n_events, 1, anomaly_share=0.1, malformed_share=0.01)
    send(events, topic, settings.kafka_bootstrap_servers)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        parts = [TopicPartition(topic, p) for p in (0, 1)]
        ends = {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()
    return topic, ends


def run(batch: int, batches: int, warmup: int, rule_counts: list[int],
        skip_seed_above: int) -> list[dict]:
    """Floor once, then the engine (and the seed's way up to ``skip_seed_above``) per rule
    count, each over the same backlog split into the same batches."""
    settings = get_settings()
    topic, ends = fill_topic(warmup + batch * batches)
    ranges = offset_ranges(ends, [warmup] + [batch] * batches)
    spark = build_session("sentinel-bench")
    redis_sink = RedisAlertSink.from_url(settings.redis_dsn,
                                         ttl_seconds=settings.redis_alert_ttl_seconds,
                                         stream_maxlen=settings.redis_stream_maxlen)
    warehouse = tempfile.mkdtemp(prefix="sentinel-bench-")
    results: list = []
    pids: list[int] = []
    try:
        pids.append(pipeline_with_rules(topic, 0))
        fields = load_pipeline(pids[-1]).fields

        def floor(_: int, rng: Range) -> None:
            parse_kafka(read_range(spark, topic, rng), fields, key_field="transaction_id",
                        schema_version=1).agg(F.count_if("_valid")).first()

        results.append(sustained("floor", None, ranges, floor))
        for k in rule_counts:
            pids.append(pipeline_with_rules(topic, k))
            p = load_pipeline(pids[-1])
            _, active = load_active_rules(p.id)
            out = alerts_topic(f"bench-alerts-{uuid.uuid4().hex[:6]}.", topic)
            create_topic(out, 3)

            def detect(_: int, rng: Range, p=p, active=active, out=out) -> None:
                write_records(alert_records(read_range(spark, topic, rng), p, active),
                              bootstrap=settings.kafka_bootstrap_servers, topic=out)

            results.append(sustained("detect", k, ranges, detect))
            alert_ends = end_offsets(settings.kafka_bootstrap_servers, out)
            alert_ranges = offset_ranges(alert_ends,
                                         split(sum(alert_ends.values()), len(ranges)))
            ctx = BatchContext(p, Paths(warehouse, p.slug), out, query_id=f"bench-{p.id}")
            ensure_tables(spark, ctx)

            def archive(batch_id: int, rng: Range, c: BatchContext = ctx, out=out,
                        alert_ranges=alert_ranges) -> None:
                alerts = read_range(spark, out, alert_ranges[ranges.index(rng)])
                process_batch(read_range(spark, topic, rng).unionByName(alerts), batch_id,
                              ctx=c)

            results.append(sustained("archive", k, ranges, archive))

            old_paths = Paths(warehouse, f"old_{p.id}")

            def old(batch_id: int, rng: Range, p=p, active=active, paths=old_paths) -> None:
                old_batch(read_range(spark, topic, rng), batch_id, pipeline=p, rules=active,
                          paths=paths, redis=redis_sink)

            results.append(sustained("old", k, ranges, old))
            if k <= skip_seed_above:
                def seed_step(batch_id: int, rng: Range, p=p) -> None:
                    seed(read_range(spark, topic, rng), p, warehouse, batch_id)

                results.append(sustained("seed", k, ranges[:2], seed_step))
    finally:
        drop_pipelines(pids)
    return results


def seed(kafka: DataFrame, p, warehouse: str, batch_id: int) -> None:
    """The seed's way: one filter and one write per rule (on a persisted parse)."""
    parsed = parse_kafka(kafka, p.fields, key_field="transaction_id", schema_version=1)
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    events = valid_events(parsed, p.fields)
    paths = Paths(warehouse, f"seed_{p.id}")
    delta.append(events, paths.events, query_id="seed", table="events", batch_id=batch_id,
                 partition_by=["event_date"])
    _, active = load_active_rules(p.id)
    for rule in active:
        alerts = to_alerts(evaluate(events.where(F.expr(rule.expression)), [rule]),
                           p.fields, p.id, F.current_timestamp())
        delta.append(alerts, paths.alerts, query_id="seed", table=f"alerts{rule.id}",
                     batch_id=batch_id)
    parsed.unpersist()


if __name__ == "__main__":
    sys.exit(main())
