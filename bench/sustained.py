"""The whole engine under a steady load: does every path keep up at a given rate?

    .venv/bin/python -m bench.sustained --rates 20000 --seconds 300 --rules 50

Per rate, a fresh pipeline (3 partitions, ``--rules`` rules of ``bench.throughput``, 1 % of
the events match one) and ``python -m streaming.job`` as Dagster starts it (detect, fan-out into
Postgres and Redis, archive to bronze/quarantine/silver). The load comes from a Spark query in
this process (``bench.load``: evenly paced, a JVM producer that holds 20k events/s on a
fraction of a core, where a Python one would need most of one).
Every 10 s the bench samples how far each path is behind what the producer has written:

* **detect**: alerts on the alerts topic vs the alerts the events written so far must raise
  (the matching events are known: ``user_id = value % 5000``), as events behind; after the
  load, the alerts owed are counted from the topic's records (``matching_events``);
* **fan-out**: alert rows in Postgres vs the alerts topic;
* **archive**: events the archive has committed (``stream_runs.input_rows``) vs written.

A path holds the rate when its lag stays bounded: its lag at the end is no larger than its
largest lag in the first half plus one archive trigger of events, and after the producer
stops it drains within ``--drain`` seconds. Also reported: the alert latency (event time in
the event id → Redis / Postgres, seen by ``bench/alert_watcher.py``), the stream process
tree's CPU and the machine's load. Needs ``make services``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.common import (
    archived_events,
    create_topic,
    drop_pipelines,
    make_pipeline,
    percentiles,
    postgres_alerts,
    save,
    topic_records,
)
from bench.idle import tree_cpu_seconds
from bench.latency import sent_ms, start_stream, start_watcher, stop_stream
from bench.load import PARTITIONS, USERS, Load
from bench.throughput import SCHEMA, rule_expression
from catalog.settings import get_settings
from streaming.detect import alerts_topic
from streaming.kafka_io import read_records
from streaming.session import build_session

# The load's user_id is n % USERS; rule i matches user_id = 37 i + 1 (1 % at 50 rules).
SAMPLE_SECONDS = 10.0


def matching_users(n_rules: int) -> list[int]:
    return sorted({i * 37 + 1 for i in range(n_rules)} & set(range(USERS)))


def expected_alerts(produced: int, users: list[int]) -> int:
    """Alerts the events ``0 .. produced-1`` raise (one per matching event: each matches one
    rule's user id and no rule's amount condition)."""
    full, rest = divmod(produced, USERS)
    return full * len(users) + sum(1 for u in users if u < rest)


def matching_events(spark: SparkSession, topic: str, users: list[int]) -> int:
    """Distinct events in ``topic`` that match a rule (its user id is one of ``users``),
    counted from the records themselves: a load stopped mid-batch or a resent record makes a
    count of records differ from the events the engine must alert on."""
    records = read_records(spark, bootstrap=get_settings().kafka_bootstrap_servers,
                           topic=topic, start="earliest")
    value = F.col("value").cast("string")
    return (records.select(F.get_json_object(value, "$.transaction_id").alias("id"),
                           F.get_json_object(value, "$.user_id").cast("long").alias("user"))
            .where(F.col("user").isin(users)).select("id").distinct().count())


def run_rate(spark: SparkSession, rate: int, seconds: float, n_rules: int, drain: float,
             trigger: float | None) -> dict:
    settings = get_settings()
    tag = f"s{rate}x{int(time.time()) % 100_000}"
    topic = f"bench-sustained-{tag}"
    create_topic(topic, PARTITIONS)
    pid = make_pipeline(topic, SCHEMA, [rule_expression(i) for i in range(n_rules)],
                        key_field="transaction_id")
    users = matching_users(n_rules)
    out = alerts_topic(settings.alerts_topic_prefix, topic)
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-bench-sustained-"))
    seen_file = workdir / "seen.json"

    def sample(t0: float, job_pid: int) -> dict:
        p, a = topic_records(topic), topic_records(out)
        archived, pg = archived_events(pid), postgres_alerts(pid)
        # Events detect is behind: the alerts still owed, at 1 alert per USERS/len(users) events.
        owed = max(0, expected_alerts(warm, users) + expected_alerts(p - warm, users) - a)
        return {"t": round(time.monotonic() - t0, 1), "produced": p, "alerts_topic": a,
                "postgres": pg, "archived": archived,
                "lag": {"detect": round(owed * USERS / len(users)), "fan-out": max(0, a - pg),
                        "archive": max(0, p - archived)},
                "cpu_s": round(tree_cpu_seconds(job_pid), 1)}

    warm = 0
    job = start_stream(pid, workdir, trigger)
    samples: list[dict] = []
    try:
        watcher = start_watcher(pid, seen_file)
        # Warm-up: the stream's JVM and first batches, at a trickle.
        load = Load(spark, topic, 50, tag + "w").start()
        deadline = time.monotonic() + 600
        while archived_events(pid) == 0 or topic_records(out) == 0:
            if job.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stream did not start: {workdir}/job.log")
            time.sleep(2)
        load.stop()
        warm = topic_records(topic)  # the warm-up's values restart at 0 in the loaded query
        print(f"rate {rate}/s: pipeline {pid}, logs in {workdir}; loading for {seconds:.0f} s",
              flush=True)
        load = Load(spark, topic, rate, tag).start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(SAMPLE_SECONDS)
            samples.append(s := sample(t0, job.pid))
            print(f"  t={s['t']:6.1f}s produced={s['produced']:>9} lag: " + " ".join(
                f"{k}={v}" for k, v in s["lag"].items()), flush=True)
            if job.poll() is not None:
                raise SystemExit(f"the stream exited with {job.returncode}: {workdir}/job.log")
        load.stop()
        stopped = time.monotonic()
        final = topic_records(topic)
        want_alerts = matching_events(spark, topic, users)
        drained: dict[str, float | None] = {"detect": None, "fan-out": None, "archive": None}
        while time.monotonic() - stopped < drain and None in drained.values():
            s = sample(t0, job.pid)
            now = round(time.monotonic() - stopped, 1)
            if drained["detect"] is None and s["alerts_topic"] >= want_alerts:
                drained["detect"] = now
            if drained["fan-out"] is None and s["postgres"] >= want_alerts:
                drained["fan-out"] = now
            if drained["archive"] is None and s["archived"] >= final:
                drained["archive"] = now
            time.sleep(1)
        time.sleep(2)
        watcher.send_signal(15)
        watcher.wait(60)
    finally:
        stop_stream(job)
        drop_pipelines([pid])
    loaded = [s for s in samples if s["t"] > 0]
    achieved = (loaded[-1]["produced"] - loaded[0]["produced"]) / max(
        loaded[-1]["t"] - loaded[0]["t"], 1e-9) if len(loaded) > 1 else 0.0
    half = [s for s in loaded if s["t"] <= seconds / 2] or loaded
    bounded = {}
    for path in ("detect", "fan-out", "archive"):
        slack = rate * (trigger or settings.trigger_interval_seconds) if path == "archive" \
            else rate * 2
        bounded[path] = (loaded[-1]["lag"][path] <= max(s["lag"][path] for s in half) + slack
                         and drained[path] is not None)
    seen = json.loads(seen_file.read_text())
    latency = {sink: percentiles([ms - sent_ms(eid) for eid, ms in seen[sink].items()
                                  if eid.startswith(tag + "-")])
               for sink in ("redis", "postgres")}
    cpu = (loaded[-1]["cpu_s"] - loaded[0]["cpu_s"]) / max(loaded[-1]["t"] - loaded[0]["t"], 1)
    return {"rate": rate, "achieved_rate": round(achieved), "events": final,
            "alerts_expected": want_alerts, "postgres_rows": postgres_alerts(pid),
            "max_lag": {p: max(s["lag"][p] for s in loaded) for p in bounded},
            "end_lag": loaded[-1]["lag"], "drain_seconds": drained, "bounded": bounded,
            "latency_ms": latency, "stream_cores": round(cpu, 2),
            "load_avg": list(os.getloadavg()), "samples": samples}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", type=int, nargs="+", default=[20_000])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--rules", type=int, default=50)
    ap.add_argument("--drain", type=float, default=300, help="seconds allowed to drain")
    ap.add_argument("--trigger", type=float, default=None,
                    help="the archive's trigger in seconds (default: the setting)")
    args = ap.parse_args()
    spark = build_session("bench-sustained-load", master="local[2]", delta=False)
    results = []
    try:
        for rate in args.rates:
            results.append(run_rate(spark, rate, args.seconds, args.rules, args.drain,
                                    args.trigger))
            r = results[-1]
            print(f"rate {rate}/s (achieved {r['achieved_rate']}/s): bounded {r['bounded']}, "
                  f"max lag {r['max_lag']}, end lag {r['end_lag']}, drained in "
                  f"{r['drain_seconds']} s; alerts {r['postgres_rows']}/{r['alerts_expected']}; "
                  f"latency Redis p50 {r['latency_ms']['redis']['p50']:.0f} ms p99 "
                  f"{r['latency_ms']['redis']['p99']:.0f} ms; stream {r['stream_cores']} cores",
                  flush=True)
    finally:
        spark.stop()
    path = save("sustained", {"args": vars(args), "results": results})
    print(f"results: {path}")
    return 0 if all(all(r["bounded"].values()) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
