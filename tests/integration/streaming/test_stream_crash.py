"""Exactly-once effect under crashes: SIGKILL the job (and its JVM) at random points, restart.

Small ``maxOffsetsPerTrigger`` makes many micro-batches, so kills land before, during and after
sink writes. After the final restart catches up, every sink holds each record exactly once.
"""

from __future__ import annotations

import random
import time

import pytest

from streaming.producer import generate_events

pytestmark = pytest.mark.integration

KILLS = 3


def test_sigkill_and_restart_is_exactly_once(make_pipeline, job_factory, spark_reader, kit,
                                             tmp_path):
    warehouse = str(tmp_path / "warehouse")
    tp = make_pipeline(kit.base_rules()[:6])
    checkpoint = kit.local_checkpoint(tmp_path / "warehouse" / "_checkpoints" / f"pipeline_{tp.id}")
    events = generate_events(kit.SCHEMA, 900, 7, anomaly_share=0.3, malformed_share=0.05,
                             id_prefix=f"p{tp.id}")
    tp.produce(events)
    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": warehouse})
    rng = random.Random(tp.id)
    log = tmp_path / f"job-{tp.id}.log"
    for kill in range(KILLS):
        job.start(max_offsets=150)
        batches_before = log.read_text().count(" batch=")
        # Wait until this run is processing (started a batch or committed one), then kill it
        # at a random moment: mid-batch, between sinks, or between batches.
        kit.wait_for(lambda b=batches_before: log.read_text().count(" batch=") > b
                     or "loaded" in log.read_text().split("===== start")[-1],
                     600, f"run {kill + 1} processing", job)
        time.sleep(rng.uniform(0.5, 6.0))
        job.kill()
    assert kit.committed_offsets(checkpoint) < len(events), "killed too late to prove anything"
    job.start(max_offsets=400)
    kit.wait_for(lambda: kit.committed_offsets(checkpoint) == len(events), 900,
                 "final catch-up", job)
    kit.check_sinks(spark_reader, tp, warehouse, kit.expected_alerts(tp))
    assert len(tp.runs()) == KILLS + 1
