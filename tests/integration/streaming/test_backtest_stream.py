"""Backtests and look-backs on a real archive.

One stream (module scope) archives generated events whose event times span the last four
days, then stops. The tests queue jobs through the API and run them with the real entry point
(``streaming.backtest``; in this test process, whose Spark session is built like the
stream's), and compare with what the live stream wrote to Postgres and
with expectations computed in plain Python from the generated events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import insert, select

from catalog.db import get_engine
from catalog.tables import backtests, pipelines, rules
from streaming.alerts import alert_id
from streaming.backtest import run_backtest, run_pending
from streaming.producer import GeneratedEvent, generate_events
from tests.integration.streaming.conftest import (
    REDIS_URL,
    ROOT,
    SCHEMA,
    TEST_JAVA_OPTIONS,
    JobProcess,
    TestPipeline,
    _clear_redis,
    archive_checkpoint,
    base_rules,
    committed_offsets,
    create_topic,
    delete_topic,
    wait_for,
)
from tests.support import auth

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=4)


@dataclass
class Archive:
    tp: TestPipeline
    warehouse: Path
    env: dict[str, str]
    events: list[dict[str, Any]]  # the valid events as sent

    def run(self, *args: str) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "streaming.backtest", *args], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=600)
        print(f"streaming.backtest {' '.join(args)}: exit {proc.returncode} "
              f"in {time.monotonic() - started:.1f}s")
        return proc


def event_time(e: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(e["event_time"].replace("Z", "+00:00"))


def spread_over_days(events: list[GeneratedEvent]) -> list[GeneratedEvent]:
    """The generator's events with event times spread evenly over [START, NOW)."""
    step = (NOW - START) / len(events)
    out = []
    for i, ev in enumerate(events):
        if ev.event is None:
            out.append(ev)
            continue
        t = START + step * i
        event = dict(ev.event, event_time=t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
        out.append(replace(ev, event=event, value=json.dumps(event).encode()))
    return out


@pytest.fixture(scope="module")
def archive(catalog_db, tmp_path_factory) -> Any:
    """A pipeline with the base rules whose stream archived ~480 events, then stopped."""
    tmp = tmp_path_factory.mktemp("backtest")
    name = f"it-backtest-{uuid.uuid4().hex[:10]}"
    create_topic(name)
    with get_engine().begin() as conn:
        pid = conn.execute(
            insert(pipelines).values(name=name, kafka_topic=name, status="active",
                                     key_field="transaction_id", schema=SCHEMA)
            .returning(pipelines.c.id)).scalar_one()
    tp = TestPipeline(pid, name)
    _clear_redis(pid)
    for spec in base_rules():
        if spec.predicate is not None:
            tp.add_rule(spec)
    sent = spread_over_days(generate_events(
        SCHEMA, 480, 7, anomaly_share=0.25, malformed_share=0.04, id_prefix=name))
    tp.produce(sent)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAVA_TOOL_OPTIONS": TEST_JAVA_OPTIONS,
           "SENTINEL_REDIS_URL": REDIS_URL, "SENTINEL_WAREHOUSE": str(tmp / "warehouse")}
    job = JobProcess(pid, env, tmp / "stream.log")
    job.start()
    try:
        checkpoint = archive_checkpoint(tmp / "warehouse", pid)
        took = wait_for(lambda: committed_offsets(checkpoint) == len(sent), 300,
                        "stream caught up", job)
        print(f"stream archived {len(sent)} records in {took:.1f}s")
        tp.set_status("paused")  # the stream stops; backtests and look-backs run without it
        assert job.wait_exit(60) == 0, job.log_tail()
    finally:
        job.stop()
    yield Archive(tp, tmp / "warehouse", env, [e.event for e in sent if e.event])
    delete_topic(name)
    _clear_redis(pid)


@contextmanager
def settings_of(archive: Archive) -> Iterator[None]:
    """This process's settings pointed at the archive's warehouse and the test Redis."""
    from catalog.settings import get_settings

    saved = {k: os.environ.get(k) for k in ("SENTINEL_WAREHOUSE", "SENTINEL_REDIS_URL")}
    os.environ.update(SENTINEL_WAREHOUSE=archive.env["SENTINEL_WAREHOUSE"],
                      SENTINEL_REDIS_URL=REDIS_URL)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def queue(client, key: str, pid: int, expression: str, since: datetime, until: datetime,
          sample_size: int = 20) -> int:
    resp = client.post(f"/api/pipelines/{pid}/rules/backtest", headers=auth(key), json={
        "rule_expression": expression, "since": since.isoformat(), "until": until.isoformat(),
        "sample_size": sample_size})
    assert resp.status_code == 202, resp.text
    return int(resp.json()["id"])


def poll(client, key: str, pid: int, job_id: int) -> dict[str, Any]:
    resp = client.get(f"/api/pipelines/{pid}/rules/backtests/{job_id}", headers=auth(key))
    assert resp.status_code == 200, resp.text
    return resp.json()


def bronze_version(warehouse: Path, pid: int) -> int:
    log = warehouse / "bronze" / f"pipeline_{pid}" / "events" / "_delta_log"
    return max(int(p.stem) for p in log.glob("*.json"))


def stream_alerts(pid: int, rule_id: int) -> set[str]:
    with get_engine().connect() as conn:
        return set(conn.exec_driver_sql(
            "select event_id from fraud_alerts where pipeline_id = %s and rule_id = %s",
            (pid, rule_id)).scalars())


def test_backtests_match_the_stream_and_plain_python(archive, client, api_keys, spark_reader):
    tp, key = archive.tp, api_keys["analyst"]
    viewer = api_keys["viewer"]
    existing = tp.rules[0]  # amount > 5000, alerted on by the live stream
    assert existing.expression == "amount > 5000"
    everything = queue(client, key, tp.id, existing.expression, START - timedelta(days=1),
                       NOW + timedelta(days=1), sample_size=1000)
    since, until = START + timedelta(days=1, hours=5), NOW - timedelta(hours=13)
    new_expr = "currency = 'EUR' AND amount > 20 OR merchant LIKE 'golf%'"
    new = queue(client, key, tp.id, new_expr, since, until, sample_size=7)
    # Passes the API (columns exist) but not Spark's analysis on the archive: recorded failure.
    with get_engine().begin() as conn:
        broken = conn.execute(insert(backtests).values(
            pipeline_id=tp.id, rule_expression="amount > 'x' AND no_such_col = 1",
            since=since, until=until, requested_by="test").returning(backtests.c.id)
        ).scalar_one()
    assert poll(client, viewer, tp.id, everything)["status"] == "queued"

    with settings_of(archive):  # in this process: one JVM less for the suite
        done, failed = run_pending(spark_reader, tp.id)
    assert (done, failed) == ([everything, new], [broken])

    # (a) an existing rule over the whole archive: exactly the live stream's hits
    job = poll(client, viewer, tp.id, everything)
    assert job["status"] == "succeeded", job["error"]
    res = job["results"]
    assert job["delta_version"] == bronze_version(archive.warehouse, tp.id)
    live = stream_alerts(tp.id, existing.id)
    assert live and res["hits"] == len(live) == res["distinct_hit_event_ids"]
    assert {s["event_id"] for s in res["sample"]} == live
    assert res["events_scanned"] == len(archive.events)
    assert res["hit_rate"] == pytest.approx(len(live) / len(archive.events))
    by_rule = {o["rule_id"]: o for o in res["overlap"]}
    assert set(by_rule) == {r.id for r in tp.rules}
    assert by_rule[existing.id]["alerts"] == by_rule[existing.id]["shared"] == len(live)
    for spec in tp.rules:
        theirs = stream_alerts(tp.id, spec.id)
        assert by_rule[spec.id]["alerts"] == len(theirs)
        assert by_rule[spec.id]["shared"] == len(theirs & live)

    # (b) a new rule over part of the archive: the count computed here, per day too
    def in_range(e: dict[str, Any]) -> bool:
        return since <= event_time(e) < until

    def predicate(e: dict[str, Any]) -> bool:
        return ((e.get("currency") == "EUR" and e["amount"] > 20)
                or (e.get("merchant") or "").startswith("golf"))

    scanned = [e for e in archive.events if in_range(e)]
    hits = [e for e in scanned if predicate(e)]
    assert hits and len(scanned) < len(archive.events)
    job = poll(client, viewer, tp.id, new)
    assert job["status"] == "succeeded", job["error"]
    res = job["results"]
    assert res["events_scanned"] == len(scanned)
    assert res["hits"] == len(hits)
    assert res["hit_rate"] == pytest.approx(len(hits) / len(scanned))
    per_day = Counter(event_time(e).date().isoformat() for e in hits)
    assert res["hits_per_day"] == dict(per_day) and len(per_day) >= 3
    want_sample = sorted(hits, key=lambda e: (event_time(e), e["transaction_id"]))[:7]
    assert [s["event_id"] for s in res["sample"]] == [e["transaction_id"] for e in want_sample]
    assert res["sample"][0]["event"]["amount"] == want_sample[0]["amount"]
    hit_ids = {e["transaction_id"] for e in hits}
    for spec in tp.rules:
        theirs = {e["transaction_id"] for e in scanned if spec.predicate(e)}
        o = next(o for o in res["overlap"] if o["rule_id"] == spec.id)
        assert (o["alerts"], o["shared"]) == (len(theirs), len(theirs & hit_ids)), spec.expression

    job = poll(client, viewer, tp.id, broken)
    assert job["status"] == "failed" and job["results"] is None
    assert "no_such_col" in job["error"] and "does not analyse" in job["error"]
    assert len(job["error"]) <= 2000

    # The command line refuses what it cannot run, before it starts a JVM.
    proc = archive.run("--id", str(everything))
    assert proc.returncode == 2 and "is succeeded, not queued" in proc.stderr
    proc = archive.run("--id", "2000000000")
    assert proc.returncode == 2 and "backtest 2000000000 does not exist" in proc.stderr

    # A backtest never writes alerts: the stream's alerts are all there is.
    with get_engine().connect() as conn:
        rule_ids = set(conn.exec_driver_sql(
            "select distinct rule_id from fraud_alerts where pipeline_id = %s", (tp.id,)
        ).scalars())
    assert rule_ids <= {r.id for r in tp.rules}


def test_lookback_alerts_once_even_when_run_twice(archive, client, api_keys, spark_reader):
    tp = archive.tp
    resp = client.post(f"/api/pipelines/{tp.id}/rules", headers=auth(api_keys["analyst"]),
                       json={"rule_expression": "merchant LIKE 'bravo%' AND amount > 30",
                             "severity": "warning", "score": 33, "lookback_days": 2})
    assert resp.status_code == 201, resp.text
    rule_id, job_id = resp.json()["id"], resp.json()["lookback"]["id"]
    with get_engine().connect() as conn:
        created = conn.execute(select(rules.c.created_at).where(rules.c.id == rule_id)
                               ).scalar_one()
    want = {e["transaction_id"] for e in archive.events
            if created - timedelta(days=2) <= event_time(e) < created
            and (e.get("merchant") or "").startswith("bravo") and e["amount"] > 30}
    assert want and len(want) < len(archive.events) // 2
    client_redis = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    stream_before = client_redis.xlen(f"fraud:alerts:{tp.id}")
    warning_before = int(client_redis.hget(f"fraud:counts:{tp.id}", "warning") or 0)

    # In this process (its Spark session is the one the checks below read with), twice.
    with settings_of(archive):
        first = run_backtest(spark_reader, job_id)
        again = run_backtest(spark_reader, job_id, rerun=True)
    assert first["written"] == {"postgres": len(want), "redis": len(want), "delta": len(want)}
    assert again["alerts"] == len(want)

    job = client.get(f"/api/pipelines/{tp.id}/rules/backtests/{job_id}",
                     headers=auth(api_keys["viewer"])).json()
    assert job["status"] == "succeeded" and job["kind"] == "lookback"
    assert job["results"]["alerts"] == len(want)
    assert job["results"]["written"] == {"postgres": 0, "redis": 0, "delta": 0}  # 2nd run

    with get_engine().connect() as conn:
        pg = conn.exec_driver_sql(
            "select event_id, alert_id, severity, score from fraud_alerts where rule_id = %s",
            (rule_id,)).all()
    assert len(pg) == len(want) and {r.event_id for r in pg} == want
    assert all(r.alert_id == alert_id(tp.id, rule_id, 1, r.event_id) for r in pg)
    assert {(r.severity, r.score) for r in pg} == {("warning", 33.0)}

    silver = spark_reader.read.format("delta").load(
        str(archive.warehouse / "silver" / f"pipeline_{tp.id}" / "alerts"))
    rows = silver.where(f"rule_id = {rule_id}").select("alert_id", "event_id").collect()
    assert len(rows) == len(want) and {r["event_id"] for r in rows} == want

    assert client_redis.xlen(f"fraud:alerts:{tp.id}") == stream_before + len(want)
    assert int(client_redis.hget(f"fraud:counts:{tp.id}", "warning")) == (warning_before
                                                                         + len(want))
    for event_id in want:
        rule_ids = client_redis.hget(f"fraud:txn:{event_id}", "rule_ids").split(",")
        assert str(rule_id) in rule_ids
    assert tp.runs()[-1].status == "stopped"  # the live stream was not started or touched
