"""Exactly-once effect under crashes: SIGKILL the job (and its JVM) at random points, restart.

Small ``maxOffsetsPerTrigger`` makes many micro-batches, so kills land before, during and after
sink writes. After the final restart catches up, every sink holds each record exactly once.
"""

from __future__ import annotations

import random
import time

import pytest

from streaming.producer import generate_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

KILLS = 3


def test_sigkill_and_restart_is_exactly_once(make_pipeline, job_factory, spark_reader, kit,
                                             tmp_path):
    warehouse = str(tmp_path / "warehouse")
    tp = make_pipeline(kit.base_rules()[:6])
    checkpoint = kit.archive_checkpoint(tmp_path / "warehouse", tp.id)
    events = generate_events(kit.SCHEMA, 600, 7, anomaly_share=0.3, malformed_share=0.05,
                             id_prefix=tp.topic)
    tp.produce(events)
    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": warehouse})
    rng = random.Random(tp.id)
    log = tmp_path / f"job-{tp.id}.log"

    def this_run() -> str:
        return log.read_text().split("===== start")[-1]

    for kill in range(KILLS):
        job.start(max_offsets=100)
        # Runs 1 and 3 die inside their first batch (after bronze, around the alert sinks);
        # run 2 after committing a batch, at a random moment of the next one or between two.
        marker = " batch=" if kill % 2 else "loaded"
        kit.wait_for(lambda m=marker: m in this_run(), 600, f"run {kill + 1} processing", job)
        time.sleep(rng.uniform(0.5, 4.0))
        job.kill()
    assert kit.committed_offsets(checkpoint) < len(events), "killed too late to prove anything"
    job.start(max_offsets=400)
    kit.wait_for(lambda: kit.committed_offsets(checkpoint) == len(events), 900,
                 "final catch-up", job)
    kit.check_sinks(spark_reader, tp, warehouse, kit.expected_alerts(tp))
    assert len(tp.runs()) == KILLS + 1
