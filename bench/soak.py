"""`make soak`: the stream at a steady share of its sustainable rate for a long time.

    .venv/bin/python -m bench.soak --rate 2000 --minutes 30 --window 60

One pipeline, one ``streaming.job`` process, the alert watcher of ``bench/latency.py``. Every
window it records the resident memory of the job's process tree (Python driver, JVM), the
Kafka lag and batch duration from ``stream_runs``, bronze's live file count (Delta log) and,
at the end, the event-to-alert latency percentiles of each window. It flags growth: memory or
files in the last window far above the first steady one, or lag that does not come back down.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from bench.common import (
    ROOT,
    create_topic,
    drop_pipelines,
    make_pipeline,
    percentiles,
    save,
    tree_rss_mib,
)
from bench.latency import RULE, SCHEMA, produce, running_stream, sent_ms, wait_rows
from catalog.db import get_engine
from catalog.tables import stream_runs
from orchestration.lake.delta_stats import table_stats


def progress(pipeline_id: int) -> dict:
    with get_engine().connect() as conn:
        row = conn.execute(select(stream_runs).where(stream_runs.c.pipeline_id == pipeline_id)
                           .order_by(stream_runs.c.id.desc())).first()
    if row is None:
        return {}
    return {"lag": row.kafka_lag, "batch_ms": row.batch_duration_ms, "rows": row.input_rows,
            "last_batch_rows": row.last_batch_rows}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, required=True, help="events/s (50%% of sustainable)")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--window", type=float, default=60, help="seconds per sample")
    ap.add_argument("--trigger-seconds", type=float, default=1)
    args = ap.parse_args()
    topic = f"bench-soak-{int(time.time())}"
    create_topic(topic, partitions=2)
    pid = make_pipeline(topic, SCHEMA, [RULE], key_field="transaction_id")
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-soak-"))
    warehouse = workdir / "warehouse"
    seen_file = workdir / "seen.json"
    rng = random.Random(7)
    windows: list[dict] = []
    bronze = str(warehouse / "bronze" / f"pipeline_{pid}" / "events")
    print(f"soak: pipeline {pid}, {args.rate:.0f} events/s for {args.minutes} min, "
          f"logs in {workdir}", flush=True)
    try:
        with running_stream(pid, workdir, args.trigger_seconds, seen_file) as (job, producer):
            total = produce(producer, topic, 50, 10, "warm", rng)
            wait_rows(pid, total, job, timeout=600)
            for k in range(max(1, int(args.minutes * 60 / args.window))):
                total += produce(producer, topic, args.rate, args.window, f"w{k}", rng)
                stats = table_stats(bronze)
                sample = {"window": k, "sent_total": total, "rss_mib": tree_rss_mib(job.pid),
                          **progress(pid), "bronze_files": stats.files,
                          "bronze_rows": stats.rows}
                windows.append(sample)
                print(f"  [{k:3d}] rss {sum(sample['rss_mib'].values()):7.0f} MiB  lag "
                      f"{sample.get('lag')}  batch {sample.get('batch_ms')} ms  files "
                      f"{stats.files}", flush=True)
                if job.poll() is not None:
                    raise SystemExit(f"the streaming job exited with {job.returncode}")
            wait_rows(pid, total, job, timeout=900)
    finally:
        drop_pipelines([pid])
    seen = json.loads(seen_file.read_text())
    for w in windows:
        tag = f"w{w['window']}-"
        lat = [ms - sent_ms(e) for e, ms in seen["redis"].items() if e.startswith(tag)]
        w["latency_ms"] = percentiles(lat)
    steady, last = windows[min(1, len(windows) - 1)], windows[-1]
    rss_growth = sum(last["rss_mib"].values()) / max(1.0, sum(steady["rss_mib"].values()))
    verdict = {"rss_growth": round(rss_growth, 2),
               "lag_end": last.get("lag"), "files_end": last["bronze_files"],
               "bounded": rss_growth < 1.5 and (last.get("lag") or 0) <= args.rate * 60}
    print(json.dumps(verdict))
    path = save("soak", {"rate": args.rate, "minutes": args.minutes, "windows": windows,
                         "verdict": verdict})
    print(f"results: {path.relative_to(ROOT)}")
    return 0 if verdict["bounded"] else 1


if __name__ == "__main__":
    sys.exit(main())
