"""API latency under concurrent load: rule CRUD, alert queries, risk look-ups.

    .venv/bin/python -m bench.api_load --alerts 100000 --concurrency 8 --seconds 15

Starts the API (uvicorn, ``--workers``) on a spare port against the catalog of ``make services``,
loads ``--alerts`` alerts into ``fraud_alerts`` for one throw-away pipeline (COPY) and as many
risk hashes into Redis, then, per operation, ``--concurrency`` threads call it for ``--seconds``.
Baseline in the same run: ``GET /healthz`` (no database, no auth). Reports p50/p99 and requests/s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg2
import redis

from bench.common import ROOT, drop_pipelines, make_pipeline, percentiles
from catalog.api_keys import create_key
from catalog.db import get_engine
from catalog.settings import get_settings

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "double", "nullable": False},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_alerts(pipeline_id: int, n: int) -> list[str]:
    """``n`` alerts over 30 days via COPY, and a risk hash per event; returns the event ids."""
    settings = get_settings()
    rng = random.Random(3)
    now = datetime.now(UTC)
    buf = io.StringIO()
    events = [f"api-{pipeline_id}-{i}" for i in range(n)]
    for i, event in enumerate(events):
        ts = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        severity = rng.choice(["info", "warning", "critical"])
        data = json.dumps({"transaction_id": event, "amount": round(rng.uniform(0, 1e4), 2)})
        buf.write("\t".join([f"bench-{pipeline_id}-{i}", str(pipeline_id), "1", "1", severity,
                             "1", event, ts.isoformat(), ts.isoformat(),
                             data.replace("\\", "\\\\")]) + "\n")
    buf.seek(0)
    conn = psycopg2.connect(settings.database_dsn.replace("postgresql+psycopg2", "postgresql"))
    with conn, conn.cursor() as cur:
        cur.copy_expert("copy fraud_alerts (alert_id, pipeline_id, rule_id, rule_version, "
                        "severity, score, event_id, event_time, alert_timestamp, "
                        "transaction_data) from stdin", buf)
    conn.close()
    r = redis.Redis.from_url(settings.redis_dsn)
    pipe = r.pipeline(transaction=False)
    for event in events:
        pipe.hset(f"fraud:txn:{event}", mapping={"score": 1, "severity": "warning",
                                                  "rule_ids": "1", "pipeline_id": pipeline_id})
        pipe.expire(f"fraud:txn:{event}", 3600)
    pipe.execute()
    return events


def hammer(name: str, call: Callable[[httpx.Client, random.Random], httpx.Response],
           base: str, key: str, threads: int, seconds: float) -> dict[str, Any]:
    """``threads`` clients calling for ``seconds``; latencies of the 2xx answers, errors apart."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[float] = []
        bad: list[int] = []
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as client:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                resp = call(client, rng)
                (mine if resp.status_code < 300 else bad).append(
                    (time.perf_counter() - t0) * 1000 if resp.status_code < 300
                    else resp.status_code)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    result = {"op": name, "requests": len(latencies), "errors": len(errors),
              "rps": len(latencies) / seconds, **percentiles(latencies)}
    print(f"  {name:<28} {result['rps']:8.0f} req/s  p50 {result['p50']:7.1f} ms  "
          f"p99 {result['p99']:7.1f} ms  errors {len(errors)}", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    topic = f"bench-api-{int(time.time())}"
    pid = make_pipeline(topic, SCHEMA, ["amount > 9000"], key_field="transaction_id")
    with get_engine().begin() as conn:
        key = create_key(conn, name=f"bench-api-{pid}", role="admin")
    print(f"api: loading {args.alerts} alerts for pipeline {pid}", flush=True)
    events = load_alerts(pid, args.alerts)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port), "--workers",
         str(args.workers), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=dict(os.environ))
    results: list[dict[str, Any]] = []
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        rule_ids: list[int] = []

        def create_rule(c: httpx.Client, rng: random.Random) -> httpx.Response:
            resp = c.post(f"/api/pipelines/{pid}/rules", json={
                "rule_expression": f"amount > {rng.randint(1, 10_000)} AND "
                                   f"transaction_id LIKE 'x{rng.randint(0, 99)}%'",
                "severity": "info"})
            if resp.status_code < 300:
                rule_ids.append(resp.json()["id"])
            return resp

        ops: list[tuple[str, Callable[[httpx.Client, random.Random], httpx.Response]]] = [
            ("GET /healthz (baseline)", lambda c, r: c.get("/healthz")),
            ("POST rule", create_rule),
            ("PUT rule", lambda c, r: c.put(f"/api/rules/{r.choice(rule_ids)}", json={
                "rule_expression": f"amount > {r.randint(1, 10_000)}"})),
            ("GET rules of a pipeline", lambda c, r: c.get(f"/api/pipelines/{pid}/rules")),
            ("GET alerts (latest 50)", lambda c, r: c.get(
                "/api/alerts", params={"pipeline_id": pid})),
            ("GET alerts (severity+day)", lambda c, r: c.get("/api/alerts", params={
                "pipeline_id": pid, "severity": r.choice(["info", "warning", "critical"]),
                "since": (datetime.now(UTC) - timedelta(days=r.randint(1, 29))).isoformat(),
                "limit": 100})),
            ("GET risk (Redis)", lambda c, r: c.get(
                f"/api/transactions/{r.choice(events)}/risk")),
        ]
        for name, call in ops:
            results.append(hammer(name, call, base, key, args.concurrency, args.seconds))
    finally:
        api.terminate()
        api.wait(30)
        drop_pipelines([pid])
        with get_engine().begin() as conn:
            conn.exec_driver_sql("delete from fraud_alerts where pipeline_id = %s", (pid,))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
