"""Several pipelines streaming at once: one Spark application each, or all in one.

    .venv/bin/python -m bench.concurrency --pipelines 1 3 10 --rate 50 --seconds 60 \
        [--mode process|shared] [--producer python|spark] [--json F]

Per level N: N pipelines (one rule matching about half of the events, 2-partition topics) and,
with ``--mode process`` (default), N ``streaming.job`` processes as Dagster launches them, each
its own Spark JVM; with ``--mode shared``, ONE ``streaming.job`` with N ``--pipeline-id`` (N
queries in one Spark application). ``--trigger-seconds`` defaults to the platform's 2 s.
After a warm-up (JVM start, table creation, first batches) one producer paces
``--rate`` events/s into every topic for ``--seconds`` (``--producer python``, default: a
kafka-python producer in this process, up to ~4,600 events/s in all; ``spark``: ``bench.load``
in a JVM of its own, for higher rates); meanwhile every few seconds it samples
the resident memory of each job's process tree (Python driver + JVM), the machine's used
memory, the load average and each pipeline's progress (``stream_runs``). Then:

* processed events/s during the window (all pipelines; a batch counts when it commits), the
  lag left when sending stopped, the time to catch up, and events/s over window + catch-up;
* event-to-alert latency p50/p95/p99: the Redis XADD id of each alert (the server clock when it
  became visible; Postgres is written before Redis, so it is an upper bound for both sinks)
  minus the send time in the event id, read after the window so no watcher competes for CPU;
* drain: ``--backlog`` events per pipeline produced at once, time until all are processed.

Every started process is stopped (SIGTERM, then SIGKILL) and the pipelines dropped, also on
failure. Needs ``make services``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaProducer
from sqlalchemy import func, select

from bench.common import (
    ROOT,
    create_topic,
    drop_pipelines,
    machine,
    make_pipeline,
    percentiles,
    save,
    tree_rss_mib,
)
from bench.latency import RULE, SCHEMA, start_stream
from catalog.db import get_engine
from catalog.settings import get_settings
from catalog.tables import stream_runs

MIN_AVAILABLE_MIB = 1500  # stop a level rather than push a shared machine into swap/OOM


def event(tag: str, seq: int, rng: random.Random) -> bytes:
    """An event whose id carries its send time in ms (``<tag>-<ms>-<seq>``)."""
    now = time.time()
    return json.dumps({"transaction_id": f"{tag}-{int(now * 1000)}-{seq}",
                       "amount": round(rng.uniform(0, 100), 2),
                       "event_time": datetime.fromtimestamp(now, UTC).isoformat()}).encode()


def produce_paced(producer: KafkaProducer, topics: Sequence[str], rate: float, seconds: float,
                  tag: str, rng: random.Random, on_tick=None) -> int:
    """``rate`` events/s into every topic for ``seconds``; returns events per topic."""
    sent, started, next_tick = 0, time.monotonic(), 0.0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) + 1
        while sent < due:
            for topic in topics:
                producer.send(topic, event(tag, sent, rng))
            sent += 1
        if on_tick is not None and elapsed >= next_tick:
            on_tick()
            next_tick += 5.0
        time.sleep(0.01)
    producer.flush()
    return sent


class SparkLoad:
    """``bench.load`` (a Spark JVM of its own) writing ``rate`` events/s into every topic for
    ``seconds``, with the latency benchmark's events (``transaction_id`` = ``<tag>-<ms>-<n>``,
    ``amount`` uniform in [0, 100), so about half match ``RULE``)."""

    def __init__(self, topics: Sequence[str], rate: float, seconds: float, tag: str) -> None:
        self.args = [sys.executable, "-m", "bench.load", "--topic", *topics,
                     "--rate", str(round(rate)), "--seconds", str(seconds),
                     "--shape", "latency", "--tag", tag]
        self.proc: subprocess.Popen | None = None

    def start(self) -> SparkLoad:
        """Returns once the load is under way (its JVM started)."""
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("loading"):
            self.proc.kill()
            raise RuntimeError(f"bench.load did not start: {line.strip() or 'no output'}")
        return self

    def wait(self, on_tick=None) -> int:
        """Waits for the load's end (calling ``on_tick`` every 5 s); returns events per topic."""
        assert self.proc is not None and self.proc.stdout is not None
        started, next_tick = time.monotonic(), 0.0
        while self.proc.poll() is None:
            if on_tick is not None and time.monotonic() - started >= next_tick:
                on_tick()
                next_tick += 5.0
            time.sleep(0.2)
        tail = self.proc.stdout.read().strip().splitlines()
        done = re.match(r"(\d+) events into", tail[-1]) if tail else None
        if self.proc.returncode != 0 or done is None:
            raise RuntimeError(f"bench.load exited {self.proc.returncode}: {tail[-1:]}")
        return int(done.group(1))


def processed(pids: Sequence[int]) -> dict[int, int]:
    """Events each pipeline's streams have read so far (all its runs)."""
    with get_engine().connect() as conn:
        rows = conn.execute(select(stream_runs.c.pipeline_id,
                                   func.coalesce(func.sum(stream_runs.c.input_rows), 0))
                            .where(stream_runs.c.pipeline_id.in_(list(pids)))
                            .group_by(stream_runs.c.pipeline_id)).all()
    done = {int(p): int(n) for p, n in rows}
    return {p: done.get(p, 0) for p in pids}


def batch_ms(pids: Sequence[int]) -> dict[int, int | None]:
    """The last micro-batch duration of each pipeline's latest run."""
    out: dict[int, int | None] = {}
    with get_engine().connect() as conn:
        for pid in pids:
            out[pid] = conn.execute(select(stream_runs.c.batch_duration_ms)
                                    .where(stream_runs.c.pipeline_id == pid)
                                    .order_by(stream_runs.c.id.desc()).limit(1)).scalar()
    return out


def wait_all(pids: Sequence[int], want: dict[int, int], jobs: Sequence[subprocess.Popen],
             timeout: float) -> float:
    """Seconds until every pipeline has read ``want[pid]`` events; fails if a job exits."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        dead = [" ".join(j.args[3:-2]) for j in jobs if j.poll() is not None]
        if dead:
            raise RuntimeError(f"streaming job(s) of pipeline(s) {dead} exited")
        done = processed(pids)
        if all(done[p] >= want[p] for p in pids):
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"not drained in {timeout:.0f}s: {processed(pids)} of {want}")


def mem_used_mib() -> tuple[float, float]:
    """(used, available) MiB of the machine (MemTotal - MemAvailable)."""
    info = {line.split(":")[0]: int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()}
    return ((info["MemTotal"] - info["MemAvailable"]) / 1024, info["MemAvailable"] / 1024)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


def alert_latencies(entries: Iterable[tuple[str, dict[str, str]]], tag: str) -> list[int]:
    """ms from send (in the event id) to Redis visibility (the XADD id) of the tag's alerts;
    an event alerted twice counts once, at its first entry."""
    seen: dict[str, int] = {}
    for entry_id, fields in entries:
        eid = fields.get("event_id", "")
        if eid.startswith(tag + "-") and eid not in seen:
            seen[eid] = int(entry_id.split("-")[0]) - int(eid.split("-")[1])
    return list(seen.values())


def stop_all(jobs: Sequence[subprocess.Popen], timeout: float = 120) -> None:
    """SIGTERM every job's process group at once, then SIGKILL what is left after ``timeout``."""
    for job in jobs:
        if job.poll() is None:
            try:
                os.killpg(job.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for job in jobs:
        try:
            job.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)


def level(n: int, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """One run with ``n`` pipelines streaming at once."""
    settings = get_settings()
    stamp = int(time.time())
    topics = [f"bench-conc-{stamp}-{n}-{i}" for i in range(n)]
    pids: list[int] = []
    jobs: list[subprocess.Popen] = []
    workdir = Path(tempfile.mkdtemp(prefix=f"sentinel-bench-conc{n}-"))
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    r = redis.Redis.from_url(settings.redis_dsn, decode_responses=True)
    res: dict[str, Any] = {"pipelines": n, "mode": args.mode, "producer": args.producer,
                           "jobs": 0,
                           "rate_per_pipeline": args.rate, "ok": False,
                           "load1_before": round(os.getloadavg()[0], 2)}
    try:
        for topic in topics:
            create_topic(topic, partitions=2)
            pids.append(make_pipeline(topic, SCHEMA, [RULE], key_field="transaction_id"))
        started = time.monotonic()
        if args.mode == "shared":
            jobs.append(start_stream(pids, workdir, args.trigger_seconds))
        else:
            for i, pid in enumerate(pids):
                (workdir / f"p{i}").mkdir()
                jobs.append(start_stream(pid, workdir / f"p{i}", args.trigger_seconds))
        print(f"[{n}] {args.mode}: pipelines {pids[0]}..{pids[-1]}, logs in {workdir}; "
              "warming up", flush=True)
        warm = produce_paced(producer, topics, 20, 5, "warm", rng)
        want = dict.fromkeys(pids, warm)
        res["startup_s"] = round(time.monotonic() - started
                                 + wait_all(pids, want, jobs, args.timeout), 1)
        res["jobs"] = len(jobs)
        print(f"[{n}] all streams through the warm-up after {res['startup_s']} s", flush=True)

        samples: list[dict[str, Any]] = []

        def sample() -> None:
            used, avail = mem_used_mib()
            rss = [sum(tree_rss_mib(j.pid).values()) for j in jobs]
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_mib": rss,
                            "mem_used_mib": round(used), "mem_available_mib": round(avail),
                            "load1": os.getloadavg()[0], "batch_ms": list(batch_ms(pids).values())})
            if avail < MIN_AVAILABLE_MIB:
                raise RuntimeError(f"only {avail:.0f} MiB available: stopping this level")

        load = (SparkLoad(topics, args.rate, args.seconds, "m").start()
                if args.producer == "spark" else None)
        before, busy0 = processed(pids), cpu_ticks()
        t0 = time.monotonic()
        if load is not None:
            sent = load.wait(on_tick=sample)
        else:
            sent = produce_paced(producer, topics, args.rate, args.seconds, "m", rng,
                                 on_tick=sample)
        window = time.monotonic() - t0
        after, busy1 = processed(pids), cpu_ticks()
        sample()
        want = dict.fromkeys(pids, warm + sent)
        catch_up = wait_all(pids, want, jobs, args.timeout)
        done = sum(after[p] - before[p] for p in pids)
        lat: list[int] = []
        per_p95: list[float] = []
        for pid in pids:
            one = alert_latencies(r.xrange(f"fraud:alerts:{pid}"), "m")
            lat += one
            per_p95.append(percentiles(one)["p95"])
        last = samples[-1]
        res.update({
            "sent_per_pipeline": sent, "window_s": round(window, 1),
            "offered_eps": round(n * sent / window, 1),
            "processed_eps": round(done / window, 1),
            "sustained_eps": round(n * sent / (window + catch_up), 1),
            "lag_at_end": sum(want[p] - after[p] for p in pids),
            "catch_up_s": round(catch_up, 1),
            "cpu_busy_pct": round(100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 1),
            "latency_ms": {"alerts": len(lat), **percentiles(lat)},
            "worst_pipeline_p95_ms": max(per_p95),
            "rss_mib_per_job_max": round(max(max(s["rss_mib"]) for s in samples)),
            "rss_mib_jobs_total_max": round(max(sum(s["rss_mib"]) for s in samples)),
            "rss_mib_per_job_last": [round(x) for x in last["rss_mib"]],
            "mem_used_mib_max": max(s["mem_used_mib"] for s in samples),
            "mem_available_mib_min": min(s["mem_available_mib"] for s in samples),
            "load1_max": round(max(s["load1"] for s in samples), 2),
            "samples": samples,
        })
        print(f"[{n}] window: {res['processed_eps']:.0f} of {res['offered_eps']:.0f} events/s, "
              f"p95 {res['latency_ms']['p95']:.0f} ms, jobs {res['rss_mib_jobs_total_max']} MiB",
              flush=True)
        if args.backlog:
            base = processed(pids)
            d0 = time.monotonic()
            for topic in topics:
                for k in range(args.backlog):
                    producer.send(topic, event("d", k, rng))
            producer.flush()
            res["backlog_produce_s"] = round(time.monotonic() - d0, 1)
            drain = wait_all(pids, {p: base[p] + args.backlog for p in pids}, jobs,
                             args.timeout) + res["backlog_produce_s"]
            res["drain"] = {"backlog_per_pipeline": args.backlog, "seconds": round(drain, 1),
                            "eps": round(n * args.backlog / drain, 1)}
            print(f"[{n}] drained {n}x{args.backlog} in {drain:.1f} s", flush=True)
        res["ok"] = True
    except (RuntimeError, TimeoutError) as exc:
        res["error"] = str(exc)
        print(f"[{n}] FAILED: {exc}", flush=True)
    finally:
        producer.close()
        stop_all(jobs)
        res["exit_codes"] = [j.returncode for j in jobs]
        for pid in pids:
            r.delete(f"fraud:alerts:{pid}")
        if pids:
            drop_pipelines(pids)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return res


def print_table(results: list[dict[str, Any]]) -> None:
    """One row per level: throughput, lag, latency, memory, load."""
    print(f"\n{'N':>3} {'mode':>7} {'start s':>7} {'offered/s':>9} {'done/s':>7} {'all/s':>6} "
          f"{'lag':>6} "
          f"{'catchup s':>9} {'p50 ms':>7} {'p95 ms':>7} {'worst p95':>9} {'MiB/job':>7} "
          f"{'MiB jobs':>8} {'used MiB':>8} {'load1':>6} {'cpu %':>5} {'drain ev/s':>10}")
    for r in results:
        if not r.get("ok"):
            print(f"{r['pipelines']:>3} FAILED: {r.get('error')}")
            continue
        lat = r["latency_ms"]
        drain = r.get("drain", {}).get("eps", 0)
        print(f"{r['pipelines']:>3} {r.get('mode', 'process'):>7} {r['startup_s']:7.0f} "
              f"{r['offered_eps']:9.0f} "
              f"{r['processed_eps']:7.0f} {r['sustained_eps']:6.0f} {r['lag_at_end']:6d} "
              f"{r['catch_up_s']:9.1f} {lat['p50']:7.0f} {lat['p95']:7.0f} "
              f"{r['worst_pipeline_p95_ms']:9.0f} {r['rss_mib_per_job_max']:7d} "
              f"{r['rss_mib_jobs_total_max']:8d} {r['mem_used_mib_max']:8d} "
              f"{r['load1_max']:6.2f} {r['cpu_busy_pct']:5.0f} {drain:10.0f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipelines", type=int, nargs="+", default=[1, 3, 10])
    ap.add_argument("--rate", type=float, default=50, help="events/s per pipeline")
    ap.add_argument("--seconds", type=float, default=60, help="measured window")
    ap.add_argument("--backlog", type=int, default=5000, help="drain test, events per pipeline")
    ap.add_argument("--mode", choices=("process", "shared"), default="process",
                    help="one Spark application per pipeline, or one for all")
    ap.add_argument("--producer", choices=("python", "spark"), default="python",
                    help="the measured load: kafka-python here, or bench.load's Spark JVM")
    ap.add_argument("--trigger-seconds", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=600, help="per wait (startup, drain)")
    ap.add_argument("--keep", action="store_true", help="keep warehouses and job logs")
    ap.add_argument("--json", help="write the results here (default bench/results/)")
    args = ap.parse_args()
    # SIGTERM (or SIGINT, ignored in background shells) still runs every level's clean-up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine()
    rng = random.Random(11)
    results = [level(n, args, rng) for n in args.pipelines]
    payload = {"machine": info, "args": vars(args), "levels": results}
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str))
    else:
        print(f"results: {save('concurrency', payload).relative_to(ROOT)}")
    print(f"\nmachine: {info}")
    print_table(results)
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
