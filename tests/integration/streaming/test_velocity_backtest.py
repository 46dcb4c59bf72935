"""Backtests and look-backs of velocity rules on a real archive equal the oracle.

Generated events (bursts, ties at equal times in several partitions, events exactly one window
apart, several keys, out-of-order and far too late records, resent duplicates) are archived to
bronze as the archive writes them (``parse_kafka`` → ``valid_events``, one Delta append per
arrival chunk), and the records the velocity path judges too late go to the quarantine with
reason ``late``. Backtests are queued through the API and run by ``streaming.backtest``; a new
rule with ``lookback_days`` alerts through the real sinks. Every expectation comes from
``tests.velocity_oracle`` (plain Python).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from catalog.db import get_engine
from catalog.tables import pipelines
from streaming.backtest import run_pending
from streaming.pipeline import Paths
from tests.integration.streaming.conftest import REDIS_URL, _clear_redis
from tests.support import auth
from tests.velocity_oracle import OracleEvent, accepted, expected_alerts, full_knowledge_alerts
from tests.velocity_streams import LATENESS_SECONDS, RULES, SCHEMA, generate, kafka_rows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
CHUNK = 40  # records per archive batch (one Delta commit each, like micro-batches)


@contextmanager
def settings_for(warehouse: Path) -> Iterator[None]:
    """This process's settings pointed at the test warehouse and the test Redis."""
    from catalog.settings import get_settings

    saved = {k: os.environ.get(k) for k in ("SENTINEL_WAREHOUSE", "SENTINEL_REDIS_URL")}
    os.environ.update(SENTINEL_WAREHOUSE=str(warehouse), SENTINEL_REDIS_URL=REDIS_URL)
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


def archive(spark, events: list[OracleEvent], paths: Paths, topic: str) -> None:
    """Bronze in arrival chunks, and the ``late`` quarantine rows, as the stream writes them."""
    from pyspark.sql import functions as F

    from streaming.parse import KAFKA_SCHEMA, parse_kafka, valid_events
    from streaming.schema import fields_of

    fields = fields_of(SCHEMA)
    for start in range(0, len(events), CHUNK):
        rows = kafka_rows(events[start : start + CHUNK], topic)
        parsed = parse_kafka(spark.createDataFrame(rows, KAFKA_SCHEMA), fields,
                             key_field="txn_id", schema_version=1)
        valid_events(parsed, fields).write.format("delta").mode("append") \
            .partitionBy("event_date").save(paths.events)
    _, late = accepted(events, lateness_seconds=LATENESS_SECONDS, time_field="ts")
    assert late, "the generated stream must hold too-late records"
    quarantine = spark.createDataFrame(
        [(None, "late", topic, e.partition, e.offset) for e in late],
        "raw_value binary, reason string, topic string, kafka_partition int, kafka_offset long",
    ).select("*", F.current_timestamp().alias("kafka_timestamp"),
             F.current_timestamp().alias("quarantined_at"),
             F.current_date().alias("quarantine_date"))
    quarantine.write.format("delta").mode("append").partitionBy("quarantine_date") \
        .save(paths.quarantine)


@pytest.fixture(scope="module")
def velocity_archive(catalog_db, tmp_path_factory, spark_reader) -> Any:
    warehouse = tmp_path_factory.mktemp("velocity") / "warehouse"
    name = f"it-velocity-{uuid.uuid4().hex[:10]}"
    with get_engine().begin() as conn:
        pid = conn.execute(
            insert(pipelines).values(name=name, kafka_topic=name, status="paused",
                                     key_field="txn_id", schema=SCHEMA)
            .returning(pipelines.c.id)).scalar_one()
    _clear_redis(pid)
    base = datetime.now(UTC) - timedelta(hours=20)
    events = generate(7, 180, prefix=name, base=base)
    archive(spark_reader, events, Paths(str(warehouse), f"pipeline_{pid}"), name)
    yield pid, warehouse, events, base
    _clear_redis(pid)


def test_velocity_backtests_equal_the_oracle(velocity_archive, client, api_keys, spark_reader):
    pid, warehouse, events, base = velocity_archive
    analyst, viewer = auth(api_keys["analyst"]), auth(api_keys["viewer"])
    kept, late = accepted(events, lateness_seconds=LATENESS_SECONDS, time_field="ts")
    assert len(kept) + len(late) < len(events)  # duplicates too
    since, until = base - timedelta(hours=1), datetime.now(UTC)
    jobs = {}
    for case in RULES:
        resp = client.post(f"/api/pipelines/{pid}/rules/backtest", headers=analyst, json={
            "rule_expression": case.expression, "since": since.isoformat(),
            "until": until.isoformat(), "sample_size": 1000})
        assert resp.status_code == 202, resp.text
        jobs[case.id] = resp.json()["id"]
    # a later range: windows still see the events just before it
    times = sorted(e.fields["ts"] for e in kept)
    mid = times[len(times) // 2]
    resp = client.post(f"/api/pipelines/{pid}/rules/backtest", headers=analyst, json={
        "rule_expression": RULES[0].expression, "since": mid.isoformat(),
        "until": until.isoformat(), "sample_size": 1000})
    assert resp.status_code == 202, resp.text
    later = resp.json()["id"]

    with settings_for(warehouse):
        done, failed = run_pending(spark_reader, pid)
    assert (sorted(done), failed) == (sorted([*jobs.values(), later]), [])

    def job_hits(job_id: int) -> tuple[dict[str, Any], set[str]]:
        job = client.get(f"/api/pipelines/{pid}/rules/backtests/{job_id}", headers=viewer).json()
        assert job["status"] == "succeeded", job["error"]
        res = job["results"]
        ids = {s["event_id"] for s in res["sample"]}
        assert res["hits"] == res["distinct_hit_event_ids"] == len(ids)  # one hit per event
        return res, ids

    for case in RULES:
        rules = {case.id: (case.rule, case.predicate)}
        stream = {e for _, e in expected_alerts(events, rules,
                                                lateness_seconds=LATENESS_SECONDS)}
        full = {e for _, e in full_knowledge_alerts(events, rules,
                                                    lateness_seconds=LATENESS_SECONDS)}
        res, got = job_hits(jobs[case.id])
        assert res["events_scanned"] == len(kept)
        assert got == full, (case.expression, sorted(got ^ full))
        assert got == stream if case.monotone else got <= stream
        assert 0 < len(got) < len(kept), case.expression  # the rule discriminates

    first = {case.id: (case.rule, case.predicate) for case in RULES[:1]}
    want = {e for _, e in expected_alerts(events, first, lateness_seconds=LATENESS_SECONDS)}
    res, got = job_hits(later)
    assert got == {e.event_id for e in kept if e.fields["ts"] >= mid} & want
    assert res["events_scanned"] == sum(1 for e in kept if e.fields["ts"] >= mid)


def test_velocity_lookback_alerts_the_oracle_through_the_sinks(velocity_archive, client,
                                                               api_keys, spark_reader):
    pid, warehouse, events, _ = velocity_archive
    case = RULES[1]  # sum(amount) by card over 10 minutes > 1000 AND amount > 20
    resp = client.post(f"/api/pipelines/{pid}/rules", headers=auth(api_keys["analyst"]), json={
        "rule_expression": case.expression, "severity": "critical", "lookback_days": 2})
    assert resp.status_code == 201, resp.text
    rule_id = resp.json()["id"]
    with settings_for(warehouse):
        done, failed = run_pending(spark_reader, pid)
    assert (done, failed) == ([resp.json()["lookback"]["id"]], [])
    want = {e for _, e in expected_alerts(events, {rule_id: (case.rule, case.predicate)},
                                          lateness_seconds=LATENESS_SECONDS)}
    with get_engine().connect() as conn:
        got = list(conn.exec_driver_sql(
            "select event_id from fraud_alerts where pipeline_id = %s and rule_id = %s",
            (pid, rule_id)).scalars())
    assert len(got) == len(set(got)) and set(got) == want
