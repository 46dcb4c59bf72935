"""Rule change → first alert of the new rule, measured from the API's answer.

    .venv/bin/python -m bench.rule_change --trials 20 --rules 50

One pipeline with ``--rules`` rules streams in one ``streaming.job``. Per trial a new rule
(``transaction_id LIKE 'rc<i>-%'``) is created through the API (the real app in this process,
on the real catalog) and, from the moment the API answered, a producer sends an event every
20 ms whose id starts ``rc<i>-``; the trial's time is when the new rule's first alert shows in
Redis (the XADD id's millisecond clock) minus the API's answer. The detect query restarts in
the same JVM for each change. Needs ``make services``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from api.main import app
from bench.common import create_topic, drop_pipelines, make_pipeline, percentiles
from bench.latency import SCHEMA, rules, start_stream, stop_stream, wait_rows
from catalog.api_keys import create_key
from catalog.db import get_engine
from catalog.settings import get_settings


def first_alert_ms(client: redis.Redis, stream: str, rule_id: int, after: str,
                   timeout: float) -> tuple[int | None, str]:
    """The Redis clock (ms) of the rule's first alert on ``stream`` after entry ``after``."""
    deadline = time.monotonic() + timeout
    last = after
    while time.monotonic() < deadline:
        for _, entries in client.xread({stream: last}, count=1000, block=50) or []:
            for entry_id, fields in entries:
                last = entry_id
                if int(fields["rule_id"]) == rule_id:
                    return int(entry_id.split("-")[0]), last
    return None, last


def run(trials: int, n_rules: int) -> dict:
    settings = get_settings()
    topic = f"bench-rc-{uuid.uuid4().hex[:6]}"
    create_topic(topic, partitions=2)
    pid = make_pipeline(topic, SCHEMA, rules(n_rules), key_field="transaction_id")
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-bench-rule-change-"))
    r = redis.Redis.from_url(settings.redis_dsn, decode_responses=True)
    stream = f"fraud:alerts:{pid}"
    r.delete(stream)
    with get_engine().begin() as conn:
        key = create_key(conn, name=f"bench-{uuid.uuid4().hex[:6]}", role="admin")
    job = start_stream(pid, workdir, None)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=0)
    times: list[float] = []
    try:
        producer.send(topic, json.dumps({"transaction_id": "warm-0", "amount": 1.0,
                                         "event_time": datetime.now(UTC).isoformat()}).encode())
        wait_rows(pid, 1, job, timeout=600)
        last = "$"
        with TestClient(app) as api:
            for i in range(trials):
                answer = api.post(f"/api/pipelines/{pid}/rules", headers={"X-API-Key": key},
                                  json={"rule_expression": f"transaction_id LIKE 'rc{i}-%'",
                                        "severity": "info", "description": f"trial {i}"})
                answered = time.time()
                assert answer.status_code == 201, answer.text
                rule_id = int(answer.json()["id"])
                seen: int | None = None
                n = 0
                while seen is None and time.time() - answered < 30:
                    event = {"transaction_id": f"rc{i}-{n}", "amount": 1.0,
                             "event_time": datetime.now(UTC).isoformat()}
                    producer.send(topic, json.dumps(event).encode())
                    producer.flush()
                    n += 1
                    seen, last = first_alert_ms(r, stream, rule_id, last, 0.02)
                if seen is None:
                    raise SystemExit(f"trial {i}: no alert of rule {rule_id} in 30 s; "
                                     f"see {workdir}/job.log")
                times.append(seen - answered * 1000)
                print(f"  trial {i}: first alert {times[-1]:.0f} ms after the API answered",
                      flush=True)
                time.sleep(1.0)
    finally:
        producer.close()
        stop_stream(job)
        drop_pipelines([pid])
    return {"trials": trials, "rules": n_rules, "ms": percentiles(times)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--rules", type=int, default=50)
    args = ap.parse_args()
    res = run(args.trials, args.rules)
    ms = res["ms"]
    print(f"\nrule change -> first alert ({res['trials']} trials, {res['rules']} rules): "
          f"p50 {ms['p50']:.0f} ms, p95 {ms['p95']:.0f} ms, max {ms['max']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
