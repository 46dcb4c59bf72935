"""Drill: the Kafka broker is killed (SIGKILL) while the stream reads it, then restarted.

The job reads a private single-node broker (started from the stack's jars on spare ports) so
the shared one never stops. Records acknowledged before the crash survive it (acks=all); the
stream either rides the outage out or fails and is restarted by a supervisor (as by the
Dagster sensor), and continues from its checkpoint. Afterwards every sink holds each record
exactly once. ``make test`` runs the short form (a 15 s outage); ``make test-reliability``
the long one (60 s).
"""

from __future__ import annotations

import time

import pytest

from streaming.producer import generate_events, send
from tests.reliability.drills import LONG, Supervisor

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(2400)]

OUTAGE = 60.0 if LONG else 15.0


def test_kafka_broker_restart_while_streaming(private_kafka, make_pipeline, job_factory,
                                              spark_reader, kit, tmp_path, report):
    warehouse = str(tmp_path / "warehouse")
    tp = make_pipeline(kit.base_rules()[:6])
    private_kafka.create_topic(tp.topic)
    checkpoint = kit.archive_checkpoint(tmp_path / "warehouse", tp.id)
    before, after = (generate_events(kit.SCHEMA, n, seed, anomaly_share=0.3,
                                     malformed_share=0.03, id_prefix=tp.topic)
                     for n, seed in ((400 if LONG else 250, 51), (150, 52)))
    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": warehouse,
                              "SENTINEL_KAFKA_BOOTSTRAP_SERVERS": private_kafka.bootstrap})
    sup = Supervisor(job, max_offsets=50 if LONG else 150)
    send(before, tp.topic, private_kafka.bootstrap)
    tp.sent.extend(before)
    sup.start()
    sup.wait(lambda: kit.committed_offsets(checkpoint) > 0, 600, "first batch")

    private_kafka.kill()
    down_at = time.monotonic()
    committed_at_crash = kit.committed_offsets(checkpoint)
    while time.monotonic() - down_at < OUTAGE:
        sup.poll()
        time.sleep(0.5)
    private_kafka.start()
    up_at = time.monotonic()
    send(after, tp.topic, private_kafka.bootstrap)
    tp.sent.extend(after)
    total = len(before) + len(after)
    recovery = sup.wait(lambda: kit.committed_offsets(checkpoint) == total, 1200,
                        "catch-up after the broker restart")
    report(outage_seconds=round(up_at - down_at, 1), recovery_seconds=round(recovery, 1),
           broker_start_seconds=round(up_at - down_at - OUTAGE, 1), job_exits=sup.exits,
           restarts=job.starts - 1, records=total, committed_at_crash=committed_at_crash)

    assert committed_at_crash < len(before), "caught up before the crash: proved nothing"
    kit.check_sinks(spark_reader, tp, warehouse, kit.expected_alerts(tp))
