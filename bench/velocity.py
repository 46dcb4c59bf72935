"""Velocity rules: sustained events/s, alert latency, state size, and Redis sorted sets beside.

    .venv/bin/python -m bench.velocity --events 20000 --keys 2000 --latency-seconds 60
    .venv/bin/python -m bench.velocity --soak-minutes 30 --keys 100000   # the long soak

Five velocity rules over two key fields (``user_id``, ``merchant``) run in the stateful query
(``streaming.velocity.VelocityQuery``, in this process's Spark application, as in a stream job):

* throughput — a backlog of ``--events`` events is read in batches of ``--batch``; events/s =
  events after the warm-up batch / their batches' time;
* latency — events produced at ``--rate`` (default: half the measured throughput) for
  ``--latency-seconds`` by ``bench.load`` in a process of its own (a JVM producer: a Python one
  needs a core at this rate); one rule alerts on every event, so latency = the alert record's
  Kafka time − the event record's Kafka time (p50/p99);
* state — the checkpoint's state files (RocksDB) and the process tree's memory after each phase;
  with ``--soak-minutes`` the same, sampled every minute at ``--rate`` over ``--keys`` keys;
* redis — the alternative "a sorted set per key and term": per event and term ZADD, trim by
  time, ZRANGEBYSCORE of the window (pipelined per event), on the same events, one client; its
  events/s and memory. It has no lateness rule, no dedup, no exactly-once replay.
Needs the local stack (Kafka, Redis). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from bench.common import (
    create_topic,
    delete_topics,
    percentiles,
    topic_records,
    tree_cpu_seconds,
    tree_rss_mib,
)
from catalog.settings import get_settings
from streaming.archive import BatchContext, ensure_tables
from streaming.pipeline import Paths, Pipeline
from streaming.rules import Rule
from streaming.session import build_session
from streaming.velocity import VelocityQuery

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "user_id", "type": "long", "nullable": True},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "merchant", "type": "string", "nullable": True},
    {"name": "event_time", "type": "timestamp", "nullable": False},
]
W = "ORDER BY event_time RANGE BETWEEN INTERVAL {} PRECEDING AND CURRENT ROW"
RULES = [
    f"count(*) OVER (PARTITION BY user_id {W.format('5 MINUTES')}) >= 1",  # every event
    f"sum(amount) OVER (PARTITION BY user_id {W.format('10 MINUTES')}) > 2000 AND amount > 100",
    f"count(DISTINCT merchant) OVER (PARTITION BY user_id {W.format('10 MINUTES')}) >= 4",
    f"count(*) OVER (PARTITION BY merchant {W.format('1 MINUTES')}) >= 50",
    f"max(amount) OVER (PARTITION BY merchant {W.format('5 MINUTES')}) > 4000 AND amount > 4000",
]
# (key field, window seconds) of the five rules' terms
REDIS_TERMS = [("user_id", 300), ("user_id", 600), ("user_id", 600), ("merchant", 60),
               ("merchant", 300)]


def events(n: int, keys: int, seed: int, start: datetime | None = None) -> list[dict[str, Any]]:
    """The backlog: ``n`` events 1 ms apart from ``start``."""
    rng = random.Random(seed)
    start = start or datetime.now(UTC)
    out = []
    for i in range(n):
        t = start + timedelta(milliseconds=i)
        out.append({"transaction_id": f"b{seed}-{i}", "user_id": rng.randrange(keys),
                    "amount": round(rng.expovariate(1 / 300), 2),
                    "merchant": f"m{rng.randrange(max(keys // 10, 1))}",
                    "event_time": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    return out


def produce(topic: str, evs: list[dict[str, Any]]) -> None:
    """The backlog, as fast as one producer sends it."""
    producer = KafkaProducer(bootstrap_servers=get_settings().kafka_bootstrap_servers,
                             linger_ms=50, batch_size=256 * 1024)
    for ev in evs:
        producer.send(topic, json.dumps(ev).encode(), key=ev["transaction_id"].encode())
    producer.flush()
    producer.close()


class Batches:
    """Every progress report of the query, polled (Spark keeps only its last 100 batches',
    fewer than a long latency phase runs)."""

    def __init__(self, query: VelocityQuery) -> None:
        assert query.query is not None
        self.query = query.query
        self.seen: dict[int, dict[str, Any]] = {}

    def poll(self) -> None:
        for p in self.query.recentProgress:
            self.seen[p["batchId"]] = p

    def processed(self) -> int:
        return sum(p["numInputRows"] for p in self.seen.values())

    def after(self, batch_id: int) -> list[dict[str, Any]]:
        """The batches after ``batch_id``, in order."""
        return [self.seen[k] for k in sorted(self.seen) if k > batch_id]


def wait_processed(batches: Batches, total: int, timeout: float) -> list[dict[str, Any]]:
    """Every batch so far, once the query has processed ``total`` records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batches.poll()
        if batches.processed() >= total:
            return batches.after(-1)
        time.sleep(1)
    raise TimeoutError(f"processed {batches.processed()}/{total}")


def wait_load(load: subprocess.Popen, batches: Batches) -> None:
    """Until the load generator exits (0, else an error), polling the query's progress."""
    while load.poll() is None:
        batches.poll()
        time.sleep(1)
    if load.returncode != 0:
        raise SystemExit(f"bench.load exited with {load.returncode}")


def stage_cpu_seconds(spark: Any) -> dict[int, float]:
    """Executor CPU seconds of each finished stage so far (Spark's task metrics: the tasks'
    own threads, without the JIT compiler, the garbage collector or the driver's planning,
    which dominate a short run and vary with the machine's other load)."""
    store = spark._jsc.sc().statusStore()
    stages = store.stageList(None, False, False, getattr(store, "stageList$default$4")(),
                             getattr(store, "stageList$default$5")()).iterator()
    out = {}
    while stages.hasNext():
        stage = stages.next()
        if stage.status().toString() == "COMPLETE":
            out[stage.stageId()] = stage.executorCpuTime() / 1e9
    return out


def median(values: list[float]) -> float:
    """The upper median (0 for none)."""
    return sorted(values)[len(values) // 2] if values else 0.0


def batch_profile(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Median records and milliseconds (in all and per phase of Spark's progress report) of
    ``batches``: where an alert's wait goes at a steady rate."""
    phases = {k for b in batches for k in b["durationMs"]}
    return {"count": len(batches), "rows": median([b["numInputRows"] for b in batches]),
            "ms": {k: median([b["durationMs"].get(k, 0) for b in batches]) for k in sorted(phases)},
            "state": [state_profile([b["stateOperators"][i] for b in batches
                                     if len(b.get("stateOperators", [])) > i])
                      for i in range(max((len(b.get("stateOperators", [])) for b in batches),
                                         default=0))]}


STATE_METRICS = ("allUpdatesTimeMs", "commitTimeMs", "numRowsTotal", "numRowsUpdated")


def state_profile(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of one stateful operator's reports: its update and commit times, rows, and
    RocksDB's own timings (``customMetrics``: get, put, flush, checkpoint, ...)."""
    custom = sorted({k for r in reports for k in r.get("customMetrics", {})
                     if k.startswith("rocksdb") and ("Latency" in k or "Count" in k)})
    return {**{k: median([r.get(k, 0) for r in reports]) for k in STATE_METRICS},
            **{k: median([r["customMetrics"].get(k, 0) for r in reports]) for k in custom}}


def du_mib(path: str) -> float:
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=False)
    return round(int(out.stdout.split()[0]) / 1024, 1) if out.stdout else 0.0


def latencies(events_topic: str, alerts_topic: str, rule_id: int, n: int,
              tag: str) -> list[tuple[int, float]]:
    """``(event's Kafka time in ms, seconds to its alert)`` for each event whose id starts with
    ``tag-`` and its rule-``rule_id`` alert (Kafka times: the event record's creation, the
    alert record's)."""
    bootstrap = get_settings().kafka_bootstrap_servers

    def read(topic: str, want: int) -> list[Any]:
        # no CRC check: kafka-python computes it in pure Python (minutes for millions of
        # records), and the broker is local
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, check_crcs=False,
                                 auto_offset_reset="earliest", consumer_timeout_ms=5000)
        got = []
        for r in consumer:
            got.append(r)
            if len(got) >= want:
                break
        consumer.close()
        return got

    sent = {key: r.timestamp for r in read(events_topic, n)
            if (key := r.key.decode()).startswith(tag + "-")}
    out = []
    for r in read(alerts_topic, 10 * n):
        msg = json.loads(r.value)
        if msg["rule_id"] == rule_id and msg["event_id"] in sent:
            sent_ms = sent[msg["event_id"]]
            out.append((sent_ms, (r.timestamp - sent_ms) / 1000))
    return out


def by_minute(lat: list[tuple[int, float]]) -> list[dict[str, Any]]:
    """p50/p99 of the latencies per minute of the load (the state fills as the windows do)."""
    if not lat:
        return []
    start = min(t for t, _ in lat)
    minutes: dict[int, list[float]] = {}
    for t, seconds in lat:
        minutes.setdefault((t - start) // 60_000, []).append(seconds)
    out = []
    for m, v in sorted(minutes.items()):
        q = percentiles(v)
        out.append({"minute": m + 1, "events": len(v), "p50": q["p50"], "p99": q["p99"]})
    return out


def start_load(topic: str, rate: float, seconds: float, keys: int, tag: str) -> subprocess.Popen:
    """``bench.load`` in a process (and JVM) of its own: ``rate`` events/s for ``seconds``."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.load", "--topic", topic, "--rate", str(round(rate)),
         "--seconds", str(seconds), "--shape", "velocity", "--keys", str(keys), "--tag", tag],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def redis_alternative(evs: list[dict[str, Any]], lateness: int) -> dict[str, Any]:
    """A sorted set per (term, key): per event and term ZADD, trim, read the window."""
    import redis

    client = redis.Redis.from_url(get_settings().redis_dsn)
    prefix = f"bench:velocity:{uuid.uuid4().hex[:8]}"
    before = client.info("memory")["used_memory"]
    started = time.monotonic()
    for ev in evs:
        t = datetime.fromisoformat(ev["event_time"].replace("Z", "+00:00")).timestamp()
        member = f"{ev['transaction_id']}|{ev['amount']}|{ev['merchant']}"
        pipe = client.pipeline(transaction=False)
        for i, (key_field, window) in enumerate(REDIS_TERMS):
            key = f"{prefix}:{i}:{ev[key_field]}"
            pipe.zadd(key, {member: t})
            pipe.zremrangebyscore(key, "-inf", t - window - lateness)
            pipe.zrangebyscore(key, t - window, t)
        replies = pipe.execute()
        windows = replies[2::3]
        _ = (len(windows[0]), sum(float(m.split(b"|")[1]) for m in windows[1]),
             len({m.split(b"|")[2] for m in windows[2]}), len(windows[3]),
             max(float(m.split(b"|")[1]) for m in windows[4]))
    seconds = time.monotonic() - started
    used = client.info("memory")["used_memory"] - before
    keys = 0
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)
        keys += 1
    return {"events": len(evs), "seconds": round(seconds, 2),
            "events_per_s": round(len(evs) / seconds, 1), "keys": keys,
            "memory_mib": round(used / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=None,
                    help="records per micro-batch (default: the velocity max offsets setting)")
    ap.add_argument("--keys", type=int, default=2000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--rate", type=float, default=None)
    ap.add_argument("--latency-seconds", type=float, default=60)
    ap.add_argument("--soak-minutes", type=float, default=0)
    ap.add_argument("--trigger", type=float, default=None,
                    help="seconds (default: SENTINEL_VELOCITY_TRIGGER_SECONDS)")
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--keep", action="store_true",
                    help="keep the topics and the warehouse (deleted at the end otherwise)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = get_settings()
    args.batch = args.batch or settings.velocity_max_offsets_per_trigger
    args.trigger = settings.velocity_trigger_seconds if args.trigger is None else args.trigger
    topic = f"bench-velocity-{uuid.uuid4().hex[:8]}"
    alerts = f"{topic}-alerts"
    create_topic(topic, args.partitions)
    create_topic(alerts, args.partitions)
    warehouse = tempfile.mkdtemp(prefix="bench-velocity-")
    try:
        result = run(args, topic, alerts, warehouse)
    finally:
        if not args.keep:  # a 30-minute soak leaves gigabytes in both
            delete_topics([topic, alerts])
            shutil.rmtree(warehouse, ignore_errors=True)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def run(args: argparse.Namespace, topic: str, alerts: str, warehouse: str) -> dict[str, Any]:
    """The benchmark's phases on ``topic`` (alerts to ``alerts``), state under ``warehouse``."""
    settings = get_settings()
    pipeline = Pipeline(0, topic, topic, "active", SCHEMA, 1, "transaction_id")
    paths = Paths(warehouse, "pipeline_bench")
    spark = build_session("bench-velocity", master="local[2]", shuffle_partitions=2)
    ensure_tables(spark, BatchContext(pipeline, paths, alerts))
    rules = [Rule(i + 1, expr, "info", None, f"bench rule {i + 1}", 1)
             for i, expr in enumerate(RULES)]
    lateness = settings.velocity_allowed_lateness_seconds
    result: dict[str, Any] = {"rules": len(rules), "key_fields": 2, "keys": args.keys,
                              "partitions": args.partitions}

    backlog = events(args.events, args.keys, seed=1,
                     start=datetime.now(UTC) - timedelta(minutes=30))
    produce(topic, backlog)
    query = VelocityQuery(spark, pipeline, paths, bootstrap=settings.kafka_bootstrap_servers,
                          topic_out=alerts, trigger=args.trigger, max_offsets=args.batch,
                          lateness_seconds=lateness)
    query.start(rules)
    batches = Batches(query)
    first = wait_processed(batches, min(args.batch, args.events), timeout=1800)
    cpu_start = tree_cpu_seconds(os.getpid())
    stages_before = stage_cpu_seconds(spark)
    progress = wait_processed(batches, args.events, timeout=1800)
    cpu = tree_cpu_seconds(os.getpid()) - cpu_start
    task_cpu = sum(v for k, v in stage_cpu_seconds(spark).items() if k not in stages_before)
    timed = progress[1:] or progress
    rows = sum(p["numInputRows"] for p in timed)
    ms = sum(p["durationMs"]["triggerExecution"] for p in timed)
    throughput = rows / (ms / 1000)
    # CPU seconds of this process tree (driver, executors, Python workers) per 1,000 events
    # after the first batch: a cost that another load on the machine changes less than
    # wall-clock figures; and the part of it spent in Spark's tasks (in a short run most of
    # the rest is the JIT compiler warming up).
    after_first = args.events - sum(p["numInputRows"] for p in first[:1])
    result["throughput"] = {"events": rows, "seconds": round(ms / 1000, 2),
                            "events_per_s": round(throughput, 1),
                            "batches": len(timed), "batch_size": args.batch,
                            "cpu_s_per_1000_events": round(cpu / max(after_first, 1) * 1000,
                                                           3),
                            "task_cpu_s_per_1000_events": round(
                                task_cpu / max(after_first, 1) * 1000, 3)}
    result["state_after_backlog"] = {"checkpoint_mib": du_mib(query.checkpoint),
                                     "rss_mib": tree_rss_mib(os.getpid())}

    rate = args.rate or max(throughput / 2, 1.0)
    load = start_load(topic, rate, args.latency_seconds, args.keys, "live")
    wait_load(load, batches)
    n = topic_records(topic) - args.events
    wait_processed(batches, args.events + n, timeout=600 + args.latency_seconds)
    lat = latencies(topic, alerts, 1, args.events + n, "live")
    live_batches = batches.after(progress[-1]["batchId"])
    result["latency"] = {"rate": round(rate, 1), "events": n, "alerts_measured": len(lat),
                         **percentiles([seconds for _, seconds in lat]),
                         "batches": batch_profile(live_batches), "by_minute": by_minute(lat)}

    if args.soak_minutes:
        samples = []
        load = start_load(topic, rate, args.soak_minutes * 60, args.keys, "soak")
        minute_start, last = time.monotonic(), max(batches.seen)
        while load.poll() is None:
            batches.poll()  # often: Spark keeps only the last 100 batches' progress
            time.sleep(5)
            if time.monotonic() - minute_start >= 60:
                minute_start = time.monotonic()
                minute = batches.after(last)
                last = max(batches.seen)
                samples.append({"minute": len(samples) + 1,
                                "checkpoint_mib": du_mib(query.checkpoint),
                                "rss_mib": tree_rss_mib(os.getpid()),
                                # records in the topic not yet processed: bounded if it holds
                                "lag": topic_records(topic) - batches.processed(),
                                "batches": batch_profile(minute)})
        result["soak"] = samples
    result["state_end"] = {"checkpoint_mib": du_mib(query.checkpoint),
                           "rss_mib": tree_rss_mib(os.getpid())}
    query.stop()
    if not args.no_redis:
        result["redis_sorted_sets"] = redis_alternative(backlog, lateness)
    return result


if __name__ == "__main__":
    sys.exit(main())
