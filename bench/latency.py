"""Event-to-alert latency of a running stream at given shares of its sustainable rate.

    .venv/bin/python -m bench.latency --rates 1000 --rules 50 --seconds 60
    .venv/bin/python -m bench.latency --sustainable 4000 --shares 0.25 0.5 0.8 --seconds 60

One pipeline (``--rules`` rules: one matches half of the events, the others none) and one
``streaming.job`` process (its archive on ``--trigger-seconds``, default the setting's). For each
rate a producer paces events whose id carries its send time in ms; ``bench/alert_watcher.py``,
a separate process, notes when each alert became visible in Redis and in Postgres. Latency =
visible - sent, per alert; p50/p95/p99 per rate and sink. Needs ``make services``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

from bench.common import (
    ROOT,
    archived_events,
    create_topic,
    drop_pipelines,
    make_pipeline,
    percentiles,
)
from catalog.settings import get_settings

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "event_time", "type": "timestamp", "nullable": False},
]
RULE = "amount >= 50"


def rules(n: int) -> list[str]:
    """``RULE`` and ``n - 1`` rules that never match (amounts stay below 100)."""
    return [RULE] + [f"amount > {1000 + i} AND event_time IS NOT NULL" for i in range(n - 1)]


def produce(producer: KafkaProducer, topic: str, rate: float, seconds: float, tag: str,
            rng: random.Random) -> int:
    """Sends ``rate`` events/s for ``seconds`` (paced in 10 ms slices); returns how many."""
    sent, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) + 1
        while sent < due:
            now = time.time()
            event = {"transaction_id": f"{tag}-{int(now * 1000)}-{sent}",
                     "amount": round(rng.uniform(0, 100), 2),
                     "event_time": datetime.fromtimestamp(now, UTC).isoformat()}
            producer.send(topic, json.dumps(event).encode())
            sent += 1
        time.sleep(0.01)
    producer.flush()
    return sent


def start_stream(pipeline_id: int | Sequence[int], workdir: Path,
                 trigger: float | None) -> subprocess.Popen:
    """``streaming.job`` for the pipeline(s) (several: one Spark application), warehouse and log
    under ``workdir``."""
    env = {**os.environ, "SENTINEL_WAREHOUSE": str(workdir / "warehouse")}
    ids = [pipeline_id] if isinstance(pipeline_id, int) else list(pipeline_id)
    with (workdir / "job.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streaming.job",
             *(a for pid in ids for a in ("--pipeline-id", str(pid))),
             *(["--trigger-seconds", str(trigger)] if trigger is not None else [])],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_stream(job: subprocess.Popen) -> None:
    os.killpg(job.pid, signal.SIGTERM)
    try:
        job.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)


def start_watcher(pipeline_id: int, out_file: Path) -> subprocess.Popen:
    """``bench/alert_watcher.py`` in its own process, once it is watching."""
    watcher = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "alert_watcher.py"), "--pipeline-id",
         str(pipeline_id), "--out", str(out_file)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    assert watcher.stdout is not None and watcher.stdout.readline().strip() == "watching"
    return watcher


@contextmanager
def running_stream(pipeline_id: int, workdir: Path, trigger: float | None,
                   seen_file: Path) -> Iterator[tuple[subprocess.Popen, KafkaProducer]]:
    """The pipeline's stream, its alert watcher and a producer; all stopped on the way out."""
    job = start_stream(pipeline_id, workdir, trigger)
    watcher: subprocess.Popen | None = None
    producer: KafkaProducer | None = None
    try:
        watcher = start_watcher(pipeline_id, seen_file)
        producer = KafkaProducer(bootstrap_servers=get_settings().kafka_bootstrap_servers,
                                 linger_ms=5)
        yield job, producer
    finally:
        if producer is not None:
            producer.close()
        if watcher is not None:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(60)
        stop_stream(job)


def print_table(results: list[dict]) -> None:
    """Per rate and sink: alerts seen and the latency percentiles."""
    print(f"\n{'rate/s':>8} {'sink':<9} {'alerts':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for res in results:
        for sink in ("redis", "postgres"):
            r = res[sink]
            print(f"{res['rate']:8.0f} {sink:<9} {r['alerts']:7d} {r['p50']:8.0f} "
                  f"{r['p95']:8.0f} {r['p99']:8.0f}")


def wait_rows(pipeline_id: int, rows: int, job: subprocess.Popen, timeout: float) -> None:
    """Until the stream has read ``rows`` events (its stream_runs row says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.poll() is not None:
            raise SystemExit(f"the streaming job exited with {job.returncode}; see its log")
        if archived_events(pipeline_id) >= rows:
            return
        time.sleep(1)
    raise SystemExit(f"the stream read fewer than {rows} events in {timeout:.0f}s")


def sent_ms(event_id: str) -> int:
    return int(event_id.split("-")[1])


def run(rates: list[float], seconds: float, trigger: float | None, settle: float,
        n_rules: int = 1) -> list[dict]:
    topic = f"bench-lat-{int(time.time())}"
    create_topic(topic, partitions=2)
    pid = make_pipeline(topic, SCHEMA, rules(n_rules), key_field="transaction_id")
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-bench-latency-"))
    out_file = workdir / "seen.json"
    rng = random.Random(1)
    results: list[dict] = []
    try:
        with running_stream(pid, workdir, trigger, out_file) as (job, producer):
            print(f"latency: pipeline {pid}, logs in {workdir}; warming up", flush=True)
            # JVM start, first batches, table creation: measured once the warm-up is through.
            warm = produce(producer, topic, 50, 10, "warm", rng)
            wait_rows(pid, warm, job, timeout=600)
            total = warm
            for rate in rates:
                tag = f"r{int(rate)}"
                n = produce(producer, topic, rate, seconds, tag, rng)
                total += n
                wait_rows(pid, total, job, timeout=600)  # drained: the next rate starts clean
                time.sleep(settle)  # the watcher's last poll
                results.append({"rate": rate, "sent": n, "tag": tag})
                print(f"  sent {n} events at {rate:.0f}/s", flush=True)
    finally:
        drop_pipelines([pid])
    seen = json.loads(out_file.read_text())
    for res in results:
        for sink in ("redis", "postgres"):
            lat = [ms - sent_ms(eid) for eid, ms in seen[sink].items()
                   if eid.startswith(res["tag"] + "-")]
            res[sink] = {"alerts": len(lat), **percentiles(lat)}
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sustainable", type=float,
                    help="events/s the engine sustains (from bench/throughput.py)")
    ap.add_argument("--shares", type=float, nargs="+", default=[0.25, 0.5, 0.8])
    ap.add_argument("--rates", type=float, nargs="+", help="events/s to run (instead of shares)")
    ap.add_argument("--rules", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--trigger-seconds", type=float, default=None,
                    help="the archive's trigger (default SENTINEL_TRIGGER_INTERVAL_SECONDS)")
    ap.add_argument("--settle", type=float, default=2,
                    help="seconds to wait after the stream has read every event of a rate")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.rates:
        rates = args.rates
    elif args.sustainable:
        rates = [args.sustainable * s for s in args.shares]
    else:
        ap.error("give --rates or --sustainable")
    results = run(rates, args.seconds, args.trigger_seconds, args.settle, args.rules)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
