"""Bronze storage before/after compaction: files and bytes per event day, and query times.

    .venv/bin/python -m bench.storage --batches 60 --batch-events 500 --days 3 [--json FILE]

Fills one pipeline's bronze the way its stream does: events in event-time order over ``--days``
days go to a 2-partition topic, then ``streaming.archive.process_batch`` runs once per small
offset slice of it (one micro-batch each, so each batch appends a file per Kafka partition to
its day). Then it measures live files and bytes per ``event_date`` (Delta log) and on disk,
and the median time of typical Spark SQL queries on the archive (a day's totals by merchant, a
key look-up, a full-scan aggregate); compacts with ``orchestration.lake.compaction.compact_table``
(under the writer lease, Z-ordered by the key like the compaction asset; ``--bin-pack`` for
plain OPTIMIZE) and measures again. VACUUM keeps its 7-day retention, so the replaced files
stay on disk: queries read only the live ones. Needs ``make services``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from pyspark import StorageLevel
from pyspark.sql import functions as F

from bench.common import (
    ROOT,
    create_topic,
    delta_log_actions,
    disk_files_by_partition,
    drop_pipelines,
    files_by_partition,
    machine,
    make_pipeline,
    save,
)
from catalog.settings import get_settings
from orchestration.lake.compaction import compact_table
from streaming.archive import BatchContext, process_batch
from streaming.pipeline import Paths, load_pipeline
from streaming.session import build_session

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "user_id", "type": "long", "nullable": True},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "merchant", "type": "string", "nullable": True},
    {"name": "event_time", "type": "timestamp", "nullable": False},
]
FIRST_DAY = datetime(2026, 3, 1, tzinfo=UTC)
MERCHANTS = [f"merchant-{i:03d}" for i in range(200)]


def produce(topic: str, n: int, days: int) -> str:
    """``n`` events spread evenly, in time order, over ``days`` days; returns a mid-run key."""
    settings = get_settings()
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=20,
                             batch_size=256 * 1024)
    step = days * 86_400 / n
    for i in range(n):
        ts = FIRST_DAY + timedelta(seconds=i * step)
        event = {"transaction_id": f"tx-{i:09d}", "user_id": i * 7919 % 50_000,
                 "amount": round((i * 37 % 10_000) / 7, 2), "merchant": MERCHANTS[i * 13 % 200],
                 "event_time": ts.isoformat()}
        producer.send(topic, json.dumps(event).encode(), partition=i % 2)
    producer.flush()
    producer.close()
    return f"tx-{n // 2 + 1:09d}"


def queries(table: str, day: str, key: str) -> dict[str, str]:
    """Typical archive queries (Spark SQL, as dbt and Superset's SQL Lab run them)."""
    src = f"delta.`{table}`"
    return {
        "day by merchant": (f"SELECT merchant, count(*) AS n, sum(amount) AS total FROM {src} "
                            f"WHERE event_date = DATE'{day}' GROUP BY merchant"),
        "key look-up": f"SELECT * FROM {src} WHERE transaction_id = '{key}'",
        "full-scan aggregate": (f"SELECT event_date, count(*) AS n, avg(amount) AS avg_amount, "
                                f"count(DISTINCT user_id) AS users FROM {src} "
                                f"GROUP BY event_date"),
    }


def time_queries(spark, sql: dict[str, str], repeats: int) -> dict[str, dict[str, Any]]:
    """Median (and min/max) seconds per query over ``repeats`` runs after one warm-up run."""
    out: dict[str, dict[str, Any]] = {}
    for name, text in sql.items():
        rows = spark.sql(text).collect()  # warm-up: planning, code generation, page cache
        secs = []
        for _ in range(repeats):
            started = time.monotonic()
            spark.sql(text).collect()
            secs.append(time.monotonic() - started)
        out[name] = {"median_s": round(statistics.median(secs), 3), "min_s": round(min(secs), 3),
                     "max_s": round(max(secs), 3), "rows": len(rows)}
    return out


def snapshot(spark, table: str, sql: dict[str, str], repeats: int) -> dict[str, Any]:
    """Live files/bytes per day (Delta log), files on disk per day, query times."""
    return {"live": files_by_partition(delta_log_actions(table), "event_date"),
            "disk": disk_files_by_partition(table, "event_date"),
            "queries": time_queries(spark, sql, repeats)}


def fill(spark, pid: int, topic: str, warehouse: str, batches: int) -> tuple[str, list[float]]:
    """One ``process_batch`` per offset slice of the topic; the bronze path, batch seconds."""
    settings = get_settings()
    kafka = (spark.read.format("kafka")
             .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
             .option("subscribe", topic).option("startingOffsets", "earliest")
             .option("endingOffsets", "latest").load()
             .persist(StorageLevel.MEMORY_AND_DISK))
    top = kafka.agg(F.max("offset")).first()[0] + 1
    pipe = load_pipeline(pid)
    ctx = BatchContext(pipe, Paths(warehouse, pipe.slug), alerts_topic="-",
                       query_id="bench-storage")
    per = -(-top // batches)
    seconds = []
    try:
        for b in range(batches):
            started = time.monotonic()
            process_batch(kafka.where(F.col("offset").between(b * per, (b + 1) * per - 1)), b,
                          ctx=ctx)
            seconds.append(time.monotonic() - started)
            if (b + 1) % 10 == 0:
                print(f"  {b + 1}/{batches} micro-batches, median "
                      f"{statistics.median(seconds):.2f} s", flush=True)
    finally:
        kafka.unpersist()
    return ctx.paths.events, seconds


def ratio(after: float, before: float) -> str:
    return f"{after / before:.2f}" if before else "-"


def print_table(res: dict[str, Any]) -> None:
    """Per day: live files/bytes before and after; per query: median seconds before/after."""
    b, a = res["before"], res["after"]
    print(f"\n{'event_date':<12} {'files before':>12} {'files after':>11} {'ratio':>6} "
          f"{'MiB before':>10} {'MiB after':>9} {'ratio':>6} {'on disk after':>13}")
    for day in sorted(set(b["live"]) | set(a["live"])):
        fb, fa = b["live"].get(day, {}), a["live"].get(day, {})
        nb, na = fb.get("files", 0), fa.get("files", 0)
        mb, ma = fb.get("bytes", 0) / 2**20, fa.get("bytes", 0) / 2**20
        disk = a["disk"].get(day, {}).get("files", 0)
        print(f"{day:<12} {nb:12d} {na:11d} {ratio(na, nb):>6} {mb:10.2f} {ma:9.2f} "
              f"{ratio(ma, mb):>6} {disk:13d}")
    print(f"\n{'query':<22} {'before s':>9} {'after s':>8} {'after/before':>12}")
    for name, qb in b["queries"].items():
        qa = a["queries"][name]
        print(f"{name:<22} {qb['median_s']:9.3f} {qa['median_s']:8.3f} "
              f"{ratio(qa['median_s'], qb['median_s']):>12}")
    c = res["compaction"]
    print(f"\ncompaction: {c['status']} in {c['seconds']} s, {c['message']} "
          f"(z-order: {c['zorder_by'] or 'none'}); fill: {res['batches']} micro-batches, "
          f"median {res['batch_median_s']} s each")


def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()  # the load before the run, not after it
    topic = f"bench-storage-{int(time.time())}"
    create_topic(topic, partitions=2)
    pid = make_pipeline(topic, SCHEMA, [], key_field="transaction_id")
    warehouse = tempfile.mkdtemp(prefix="sentinel-bench-storage-")
    spark = build_session("sentinel-bench-storage")
    try:
        n = args.batches * args.batch_events
        key = produce(topic, n, args.days)
        print(f"storage: pipeline {pid}, {n} events over {args.days} days in {args.batches} "
              f"micro-batches, warehouse {warehouse}", flush=True)
        table, batch_secs = fill(spark, pid, topic, warehouse, args.batches)
        day = (FIRST_DAY + timedelta(days=args.days // 2)).date().isoformat()
        sql = queries(table, day, key)
        before = snapshot(spark, table, sql, args.repeats)
        result = compact_table(spark, table, zorder_by=None if args.bin_pack else "transaction_id",
                               owner="bench-storage")
        after = snapshot(spark, table, sql, args.repeats)
    finally:
        spark.stop()
        drop_pipelines([pid])
        if not args.keep:
            shutil.rmtree(warehouse, ignore_errors=True)
    return {"machine": info, "events": n, "days": args.days, "batches": args.batches,
            "batch_median_s": round(statistics.median(batch_secs), 2), "queries_sql": sql,
            "before": before, "after": after, "compaction": result.as_dict()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=60, help="micro-batches to fill bronze with")
    ap.add_argument("--batch-events", type=int, default=500, help="events per micro-batch")
    ap.add_argument("--days", type=int, default=3, help="event days the events span")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per query (median)")
    ap.add_argument("--bin-pack", action="store_true", help="OPTIMIZE without Z-order")
    ap.add_argument("--keep", action="store_true", help="keep the warehouse directory")
    ap.add_argument("--json", help="write the results here (default bench/results/)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    res = run(args)
    print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))
    else:
        print(f"results: {save('storage', res).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
