"""Events/s through one micro-batch: Sentinel's engine vs a floor and the seed's approach.

    .venv/bin/python -m bench.throughput --events 50000 --rules 1 10 100

All variants read the same Kafka topic (produced once) in the same Spark session:
* floor   — Kafka read + JSON parse + count (no sink);
* engine  — ``streaming.batch.process_batch``: parse/persist, quarantine + bronze Delta appends,
            all rules in one projection, alerts to Postgres, Redis and Delta;
* seed    — parse/persist + bronze append, then per rule one filter and one Delta alerts write.
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

from kafka.admin import KafkaAdminClient, NewTopic
from pyspark import StorageLevel
from pyspark.sql import functions as F
from sqlalchemy import delete, insert

from catalog.db import get_engine
from catalog.settings import get_settings
from catalog.tables import pipelines, rules
from streaming.alerts import to_alerts
from streaming.batch import BatchContext, process_batch
from streaming.parse import parse_kafka, valid_events
from streaming.pipeline import Paths, load_pipeline
from streaming.producer import generate_events, send
from streaming.rules import RuleCache, evaluate, load_active_rules
from streaming.session import build_session
from streaming.sinks import delta

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


def make_pipeline(n_rules: int, topic: str) -> int:
    with get_engine().begin() as conn:
        pid = conn.execute(insert(pipelines).values(
            name=f"{topic}-{n_rules}", kafka_topic=f"{topic}-{n_rules}", status="active",
            key_field="transaction_id", schema=SCHEMA).returning(pipelines.c.id)).scalar_one()
        if n_rules:
            conn.execute(insert(rules), [
                {"pipeline_id": pid, "rule_expression": rule_expression(i),
                 "severity": "warning", "score": float(i)} for i in range(n_rules)
            ])
    return pid


def timed(variant: str, rules_n: int | None, fn, n: int, results: list) -> None:
    started = time.monotonic()
    fn()
    secs = time.monotonic() - started
    results.append({"variant": variant, "rules": rules_n, "seconds": round(secs, 3),
                    "events": n, "events_per_s": round(n / secs, 1)})
    label = variant if rules_n is None else f"{variant} {rules_n} rules"
    print(f"{label:<22} {secs:8.2f} s {n / secs:10.0f} events/s", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rules", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--skip-seed-above", type=int, default=100)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = run(args.events, args.rules, args.skip_seed_above)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


def run(n_events: int, rule_counts: list[int], skip_seed_above: int) -> list[dict]:
    """Floor once, then engine (and the seed's way up to ``skip_seed_above``) per rule count."""
    settings = get_settings()
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    events = generate_events(SCHEMA, n_events, 1, anomaly_share=0.1, malformed_share=0.01)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:  # the broker does not auto-create topics
        admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    send(events, topic, settings.kafka_bootstrap_servers)
    spark = build_session("sentinel-bench")
    kafka = (spark.read.format("kafka")
             .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
             .option("subscribe", topic).option("startingOffsets", "earliest")
             .option("endingOffsets", "latest").load()
             .persist(StorageLevel.MEMORY_AND_DISK))
    n = kafka.count()
    warehouse = tempfile.mkdtemp(prefix="sentinel-bench-")
    results: list = []
    pids: list[int] = []
    try:
        pids.append(make_pipeline(0, topic))
        pipe = load_pipeline(pids[-1])
        def floor() -> None:
            parse_kafka(kafka, pipe.fields, key_field="transaction_id", schema_version=1
                        ).agg(F.count_if("_valid")).first()

        floor()  # warm-up: JIT and code generation, so the floor is not penalised
        # The engine's warm-up too: first Delta tables, sink connections, code generation.
        pids.append(make_pipeline(1, f"{topic}-warm"))
        warm = load_pipeline(pids[-1])
        process_batch(kafka, 0, ctx=BatchContext(warm, Paths(warehouse, warm.slug),
                                                 query_id="bench-warm", rules=RuleCache(warm.id)))
        timed("floor", None, floor, n, results)
        for k in rule_counts:
            pid = make_pipeline(k, topic)
            pids.append(pid)
            p = load_pipeline(pid)
            ctx = BatchContext(p, Paths(warehouse, p.slug), query_id=f"bench-{pid}",
                               rules=RuleCache(pid))
            timed("engine", k, lambda c=ctx: process_batch(kafka, 0, ctx=c), n, results)
            if k <= skip_seed_above:
                timed("seed", k, lambda p=p, w=warehouse: seed(kafka, p, w), n, results)
    finally:
        with get_engine().begin() as conn:
            conn.execute(delete(pipelines).where(pipelines.c.id.in_(pids)))
        kafka.unpersist()
    return results


def seed(kafka, p, warehouse: str) -> None:
    """The seed's way: one filter and one write per rule (on a persisted parse)."""
    parsed = parse_kafka(kafka, p.fields, key_field="transaction_id", schema_version=1)
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    events = valid_events(parsed, p.fields)
    paths = Paths(warehouse, f"seed_{p.id}")
    delta.append(events, paths.events, query_id="seed", table="events", batch_id=0,
                 partition_by=["event_date"])
    _, active = load_active_rules(p.id)
    for rule in active:
        alerts = to_alerts(evaluate(events.where(F.expr(rule.expression)), [rule]),
                           p.fields, p.id, F.current_timestamp())
        delta.append(alerts, paths.alerts, query_id="seed", table=f"alerts{rule.id}",
                     batch_id=0)
    parsed.unpersist()


if __name__ == "__main__":
    sys.exit(main())
