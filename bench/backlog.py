"""The engine draining a backlog as streams: detect alone, then the whole stream process.

    .venv/bin/python -m bench.backlog --events 1000000 --rules 50
    .venv/bin/python -m bench.backlog --topic bench-backlog-<id>   # again, on the same backlog

One topic (3 partitions) is filled once with ``--events`` generated events (1 % malformed);
the pipeline has ``--rules`` rules, ``bench.throughput``'s (each one OR-ed predicate).
* **detect** — the detect query alone (``streaming.detect.Detector``, real-time mode, in this
  process's Spark application, one slot per partition): events/s = events / the time from its
  start until the alerts topic stops growing (its last alert), the first-to-last-alert time and
  the pace from 10 to 90 % of the alerts (without the start and the JIT's first compilations);
* **stream** — ``python -m streaming.job`` as Dagster starts it, on a second pipeline over the
  same topic: detect, the fan-out into Postgres and Redis, and the archive (bronze, quarantine,
  silver). Reported per path: the detect path's alerts (alerts topic) and the fan-out's
  (Postgres rows) and the archive's events (``stream_runs.input_rows``), each as events/s from
  the process's start until that path holds the whole backlog.
Needs ``make services``; warehouses in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.common import (
    archived_events,
    create_topic,
    drop_pipelines,
    make_pipeline,
    postgres_alerts,
    topic_records,
)
from bench.latency import start_stream, stop_stream
from bench.throughput import SCHEMA, rule_expression
from catalog.settings import get_settings
from streaming.detect import Detector, alerts_topic
from streaming.pipeline import Paths, load_pipeline
from streaming.producer import generate_events, send
from streaming.rules import load_active_rules
from streaming.session import build_session, local_slots
from streaming.topics import ensure_topic

PARTITIONS = 3


Samples = list[tuple[float, int]]


def wait_stable(count: Callable[[], int], *, settle: float, timeout: float,
                until: int | None = None) -> tuple[int, float, float, Samples]:
    """Poll ``count`` until it reaches ``until`` (or, without one, stops growing for ``settle``
    seconds); returns (the count, when it first grew, when it last grew, every (time, count)
    polled) (monotonic)."""
    last, grew = count(), time.monotonic()
    first = grew if last else None
    samples: Samples = [(grew, last)]
    deadline = grew + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = count()
        samples.append((time.monotonic(), now))
        if now != last:
            last, grew = now, time.monotonic()
            first = first or grew
        if first is not None and until is not None and last >= until:
            return last, first, grew, samples
        if first is not None and until is None and time.monotonic() - grew >= settle:
            return last, first, grew, samples
    raise SystemExit(f"timed out at {last} (wanted {until})")


def steady_rate(samples: Samples, final: int, events: int) -> float | None:
    """Events/s while the count went from 10 % to 90 % of ``final``: the drain's pace once the
    query is running and its code compiled, without its start or its tail (the count, alerts
    or archived events, grows in proportion to the events the path has taken)."""
    t10 = next(t for t, n in samples if n >= 0.1 * final)
    t90 = next(t for t, n in samples if n >= 0.9 * final)
    if t90 - t10 < 1.0:  # a path that took most of it in one step (an archive batch): no pace
        return None
    return 0.8 * events / (t90 - t10)


def pipeline_on(topic: str, n_rules: int) -> int:
    """A pipeline on ``topic`` (one at a time: a topic belongs to one pipeline)."""
    return make_pipeline(topic, SCHEMA, [rule_expression(i) for i in range(n_rules)],
                         key_field="transaction_id")


def detect_alone(pid: int, topic: str, workdir: Path, timeout: float) -> dict:
    """The detect query alone on the backlog; its alerts go to a topic of their own."""
    settings = get_settings()
    spark = build_session("bench-backlog-detect",
                          master=local_slots(settings.spark_master, 2 * PARTITIONS + 1))
    pipeline = load_pipeline(pid)
    out = alerts_topic(settings.alerts_topic_prefix, f"{topic}-detect-{uuid.uuid4().hex[:6]}")
    ensure_topic(settings.kafka_bootstrap_servers, out, partitions=PARTITIONS, replication=1)
    detector = Detector(spark, pipeline, Paths(str(workdir / "warehouse"), pipeline.slug),
                        bootstrap=settings.kafka_bootstrap_servers, topic_out=out,
                        interval="30 seconds")
    _, rules = load_active_rules(pid)
    started = time.monotonic()
    detector.start(rules)
    try:
        alerts, first, last, samples = wait_stable(
            lambda: topic_records(out),
            settle=10.0, timeout=timeout)
    finally:
        detector.stop()
        spark.stop()
    return {"alerts": alerts, "seconds": round(last - started, 1),
            "first_to_last_seconds": round(last - first, 1), "samples": samples}


def whole_stream(pid: int, workdir: Path, events: int, alerts: int, timeout: float) -> dict:
    """``streaming.job`` on the backlog: when each path holds all of it."""
    settings = get_settings()
    pipeline = load_pipeline(pid)
    out = alerts_topic(settings.alerts_topic_prefix, pipeline.topic)
    before = topic_records(out)  # alerts of an earlier run on the same backlog (``--topic``)

    job = start_stream(pid, workdir, None)
    started = time.monotonic()
    try:
        result = {}
        for name, count, until in (("detect", lambda: topic_records(out) - before, alerts),
                                   ("fan-out", lambda: postgres_alerts(pid), alerts),
                                   ("archive", lambda: archived_events(pid), events)):
            n, first, last, samples = wait_stable(count, settle=0, timeout=timeout,
                                                  until=until)
            result[name] = {"count": n, "seconds": round(last - started, 1),
                            "first_to_last_seconds": round(last - first, 1),
                            "steady_events_per_s": steady_rate(samples, n, events)}
            if job.poll() is not None:
                raise SystemExit(f"the stream exited with {job.returncode}: {workdir}/job.log")
    finally:
        stop_stream(job)
    return result


def pace(rate: float | None) -> str:
    return "no pace (one step)" if rate is None else f"{rate:,.0f} events/s"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rules", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--topic", help="a backlog topic an earlier run filled (printed by it), "
                    "instead of filling a new one")
    args = ap.parse_args()
    settings = get_settings()
    topic = args.topic or f"bench-backlog-{uuid.uuid4().hex[:8]}"
    if not args.topic:
        create_topic(topic, partitions=PARTITIONS)
        print(f"filling {topic} with {args.events:,} events ...", flush=True)
        t0 = time.monotonic()
        send(generate_events(SCHEMA, args.events, 3, anomaly_share=0.1, malformed_share=0.01),
             topic, settings.kafka_bootstrap_servers)
        print(f"  filled in {time.monotonic() - t0:.0f} s", flush=True)
    n = topic_records(topic)
    if not n:
        raise SystemExit(f"{topic} holds no events (a --topic that does not exist?)")
    print(f"{topic}: {n:,} events", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-bench-backlog-"))
    pid = pipeline_on(topic, args.rules)
    try:
        detect = detect_alone(pid, topic, workdir / "detect", args.timeout)
    finally:
        drop_pipelines([pid])
    detect["steady_events_per_s"] = steady_rate(detect.pop("samples"), detect["alerts"], n)
    print(f"detect alone: {detect['alerts']:,} alerts, {n:,} events in {detect['seconds']} s"
          f" = {n / detect['seconds']:,.0f} events/s from its start (first to last alert "
          f"{detect['first_to_last_seconds']} s; {pace(detect['steady_events_per_s'])} "
          f"from 10 to 90 % of the alerts)", flush=True)
    pid = pipeline_on(topic, args.rules)
    (workdir / "stream").mkdir(parents=True)
    try:
        stream = whole_stream(pid, workdir / "stream", n, detect["alerts"], args.timeout)
    finally:
        drop_pipelines([pid])
    for path, r in stream.items():
        print(f"stream, {path}: {r['count']:,} in {r['seconds']} s = "
              f"{n / r['seconds']:,.0f} events/s from the process's start (first to last "
              f"{r['first_to_last_seconds']} s; {pace(r['steady_events_per_s'])} from 10 "
              f"to 90 %)", flush=True)
    results = {"events": n, "rules": args.rules, "detect_alone": detect, "stream": stream,
               "workdir": str(workdir)}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
