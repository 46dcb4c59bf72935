"""Idle cost: the CPU one pipeline's stream process uses at a trickle of events.

    .venv/bin/python -m bench.idle --rate 5 --seconds 120 --rules 2

One ``streaming.job`` (detect, fan-out and archive in one process tree: the Python driver and
its JVM) on a pipeline receiving ``--rate`` events/s. After a warm-up, the CPU time of the
whole process tree (utime + stime of every process, from /proc) is sampled at the start and
the end of ``--seconds``; cores = CPU seconds / wall seconds. Needs ``make services``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.common import create_topic, drop_pipelines, make_pipeline, process_tree
from bench.latency import SCHEMA, produce, rules, running_stream, wait_rows

TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """utime + stime of a process and all its descendants (seconds)."""
    ticks = sum(int(fields[12]) + int(fields[13]) for fields in process_tree(root_pid).values())
    return ticks / TICKS


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=5)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--rules", type=int, default=2)
    ap.add_argument("--trigger", type=float, default=None,
                    help="the archive's trigger in seconds (default: the setting)")
    args = ap.parse_args()
    topic = f"bench-idle-{int(time.time())}"
    create_topic(topic, partitions=3)
    pid = make_pipeline(topic, SCHEMA, rules(args.rules), key_field="transaction_id")
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-bench-idle-"))
    rng = random.Random(5)
    try:
        with running_stream(pid, workdir, args.trigger, workdir / "seen.json") as (job, producer):
            n = produce(producer, topic, args.rate, args.warmup, "warm", rng)
            wait_rows(pid, n, job, timeout=600)
            cpu0, t0 = tree_cpu_seconds(job.pid), time.monotonic()
            produce(producer, topic, args.rate, args.seconds, "idle", rng)
            cpu1, t1 = tree_cpu_seconds(job.pid), time.monotonic()
    finally:
        drop_pipelines([pid])
    cores = (cpu1 - cpu0) / (t1 - t0)
    print(f"idle: {args.rate:g} events/s, {args.rules} rules, {t1 - t0:.0f} s: "
          f"{cpu1 - cpu0:.1f} CPU s = {cores:.3f} core (stream process tree; archive trigger "
          f"{'default' if args.trigger is None else f'{args.trigger:g} s'}; log {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
