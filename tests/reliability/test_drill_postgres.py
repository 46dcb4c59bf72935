"""Drill: the catalog Postgres crashes (immediate shutdown) while events stream, and returns.

A private cluster (initdb, migrated with ``python -m catalog.migrate``) is the whole catalog of
this drill: pipeline and rules, stream_runs, fraud_alerts and the writer leases. While it is
down the job cannot take the table lease nor write alerts: the batch retries, fails
uncommitted, and the job exits; restarts fail fast until Postgres is back (the supervisor
plays the Dagster sensor). Afterwards every sink holds each record exactly once.
``make test`` runs the short form (a 15 s outage); ``make test-reliability`` the long one (60 s).
"""

from __future__ import annotations

import threading
import time

import pytest

from streaming.producer import generate_events, send
from tests.reliability.drills import LONG, Supervisor

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(2400)]

OUTAGE = 60.0 if LONG else 15.0


def test_postgres_outage_while_streaming(private_catalog, private_redis, make_pipeline,
                                         job_factory, spark_reader, kit, tmp_path, report):
    warehouse = str(tmp_path / "warehouse")
    tp = make_pipeline(kit.base_rules()[:6])
    checkpoint = kit.archive_checkpoint(tmp_path / "warehouse", tp.id)
    before, during, after = (generate_events(kit.SCHEMA, n, seed, anomaly_share=0.3,
                                             malformed_share=0.03, id_prefix=tp.topic)
                             for n, seed in ((200, 41), (150 if LONG else 60, 42), (100, 43)))
    # A private Redis too: the private catalog's pipeline ids restart at 1, so its Redis keys
    # (fraud:counts:<id>, ...) would meet those of the shared test catalog's pipelines.
    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": warehouse,
                              "SENTINEL_REDIS_URL": private_redis.url})
    assert job.env["SENTINEL_DATABASE_URL"] == private_catalog.url
    sup = Supervisor(job, max_offsets=50 if LONG else 120)
    tp.produce(before)
    sup.start()
    sup.wait(lambda: kit.committed_offsets(checkpoint) > 0, 600, "first batch")

    private_catalog.crash()
    down_at = time.monotonic()
    tp.sent.extend(during)
    sender = threading.Thread(target=send, args=(during, tp.topic, "127.0.0.1:9092"),
                              kwargs={"rate": len(during) / OUTAGE})
    sender.start()
    # Down for OUTAGE seconds, and at least until the stream has felt it (a job exit).
    while time.monotonic() - down_at < OUTAGE or not sup.exits:
        assert time.monotonic() - down_at < OUTAGE + 900, "the job never noticed the outage"
        sup.poll()
        time.sleep(0.5)
    sender.join(timeout=120)
    private_catalog.start()
    up_at = time.monotonic()
    committed_at_restore = kit.committed_offsets(checkpoint)
    tp.produce(after)
    total = len(before) + len(during) + len(after)
    recovery = sup.wait(lambda: kit.committed_offsets(checkpoint) == total, 1200,
                        "catch-up after the outage")
    report(outage_seconds=round(up_at - down_at, 1), recovery_seconds=round(recovery, 1),
           job_exits=sup.exits, restarts=job.starts - 1, records=total,
           committed_when_postgres_returned=committed_at_restore)

    assert committed_at_restore < total, "nothing was left to replay: the drill proved nothing"
    assert sup.exits and all(rc != 0 for rc in sup.exits), sup.exits
    kit.check_sinks(spark_reader, tp, warehouse, kit.expected_alerts(tp),
                    redis_url=private_redis.url)
    runs = tp.runs()
    assert len(runs) >= 2 and runs[-1].status == "running", runs
