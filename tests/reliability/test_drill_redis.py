"""Drill: Redis goes down (SIGKILL) while events stream, and comes back.

The job talks to a private redis-server (AOF, fsync always) so the shared one never stops.
The alert fan-out holds the batch that met the outage and retries it (its Kafka offsets stay
uncommitted) until Redis is back; detect and the archive go on. A supervisor stands by to
restart the job as the Dagster sensor would, and must not be needed. Afterwards bronze,
quarantine and the alerts in Delta, Postgres and Redis hold every record exactly once.
Short form: a 15 s outage; long form (``SENTINEL_DRILL_LONG=1``): 60 s.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from streaming.producer import generate_events, send
from tests.reliability.drills import LONG, Supervisor

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(2400)]

OUTAGE = 60.0 if LONG else 15.0


def test_redis_outage_while_streaming(make_pipeline, job_factory, spark_reader, kit, tmp_path,
                                      private_redis, report):
    warehouse = str(tmp_path / "warehouse")
    tp = make_pipeline(kit.base_rules()[:6])
    checkpoint = kit.archive_checkpoint(tmp_path / "warehouse", tp.id)
    before, during, after = (generate_events(kit.SCHEMA, n, seed, anomaly_share=0.3,
                                             malformed_share=0.03, id_prefix=tp.topic)
                             for n, seed in ((200, 31), (150 if LONG else 60, 32), (100, 33)))
    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": warehouse,
                              "SENTINEL_REDIS_URL": private_redis.url})
    sup = Supervisor(job, max_offsets=50)
    tp.produce(before)
    sup.start()
    sup.wait(lambda: kit.committed_offsets(checkpoint) > 0, 600, "first batch")

    private_redis.kill()
    down_at = time.monotonic()
    tp.sent.extend(during)  # sent at a steady rate through the outage
    sender = threading.Thread(target=send, args=(during, tp.topic, "127.0.0.1:9092"),
                              kwargs={"rate": len(during) / OUTAGE})
    sender.start()
    # Down for OUTAGE seconds, and at least until the alert fan-out has felt it: it holds the
    # batch it could not write and retries it (detect and the archive go on meanwhile).
    def felt() -> bool:
        return "fan-out: sinks failed" in job.log_path.read_text()

    while time.monotonic() - down_at < OUTAGE or not felt():
        assert time.monotonic() - down_at < OUTAGE + 900, "the job never noticed the outage"
        sup.poll()
        time.sleep(0.5)
    sender.join(timeout=120)
    private_redis.start()
    up_at = time.monotonic()
    client = redis.Redis.from_url(private_redis.url)
    missing_at_restore = len(kit.expected_alerts(tp)) - client.xlen(f"fraud:alerts:{tp.id}")
    tp.produce(after)
    total = len(before) + len(during) + len(after)
    recovery = sup.wait(lambda: kit.committed_offsets(checkpoint) == total, 1200,
                        "catch-up after the outage")
    report(outage_seconds=round(up_at - down_at, 1), recovery_seconds=round(recovery, 1),
           job_exits=sup.exits, restarts=job.starts - 1, records=total,
           alerts_missing_in_redis_when_it_returned=missing_at_restore)

    assert missing_at_restore > 0, "nothing was held back: the drill proved nothing"
    assert not sup.exits, sup.exits  # the fan-out retried; nothing had to restart
    kit.check_sinks(spark_reader, tp, warehouse, kit.expected_alerts(tp),
                    redis_url=private_redis.url)
    assert "redis alerts failed" in job.log_path.read_text()
