"""Drill: SIGKILL the streaming process (detect, fan-out and archive at once) at random points.

The short form (``make test``) kills it 3 times; the long form (``make test-reliability``)
``SENTINEL_DRILL_KILLS`` times (default 10), while more events keep
arriving between kills, at random moments: during start-up, inside a batch (before, during or
after its sink writes) and between batches. After the last restart catches up, every sink
holds each record exactly once. A start killed inside a batch has recorded its ``stream_runs``
row; one killed during start-up may have died before it (the row is written once the Spark
session is up), never recorded two.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from streaming.producer import generate_events
from tests.reliability.drills import LONG

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(5400)]

KILLS = int(os.environ.get("SENTINEL_DRILL_KILLS", "10" if LONG else "3"))


def test_sigkill_at_random_points(make_pipeline, job_factory, spark_reader, kit, tmp_path,
                                  report):
    warehouse = str(tmp_path / "warehouse")
    tp = make_pipeline(kit.base_rules()[:6])
    checkpoint = kit.archive_checkpoint(tmp_path / "warehouse", tp.id)
    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": warehouse})
    rng = random.Random(tp.id * 7919)
    log = job.log_path
    waves = [generate_events(kit.SCHEMA, 150, 100 + k, anomaly_share=0.3,
                             malformed_share=0.05, id_prefix=tp.topic) for k in range(KILLS)]
    points: list[str] = []
    new_runs: list[int] = []  # stream_runs rows each killed start left behind
    for kill in range(KILLS):
        tp.produce(waves[kill])
        runs_before = len(tp.runs())
        job.start(max_offsets=60)
        where = rng.choice(("startup", "first batch", "later batch"))
        points.append(where)
        if where == "startup":
            time.sleep(rng.uniform(1.0, 15.0))
        else:
            marker = "loaded" if where == "first batch" else " batch="
            kit.wait_for(lambda m=marker: m in log.read_text().split("===== start")[-1], 900,
                         f"run {kill + 1} processing", job)
            time.sleep(rng.uniform(0.0, 5.0))
        before = kit.committed_offsets(checkpoint)
        job.kill()
        new_runs.append(len(tp.runs()) - runs_before)
        print(f"kill {kill + 1}/{KILLS} at {where}: {before} offsets committed")
        assert new_runs[-1] in ((0, 1) if where == "startup" else (1,)), (where, new_runs)
    total = sum(len(w) for w in waves)
    assert kit.committed_offsets(checkpoint) < total, "killed too late to prove anything"
    job.start(max_offsets=400)
    recovery = kit.wait_for(lambda: kit.committed_offsets(checkpoint) == total, 1200,
                            "final catch-up", job)
    runs = tp.runs()
    report(kills=KILLS, points=points, records=total, final_catch_up_seconds=round(recovery, 1),
           runs_recorded=len(runs))
    kit.check_sinks(spark_reader, tp, warehouse, kit.expected_alerts(tp))
    assert len(runs) == sum(new_runs) + 1 and runs[-1].status == "running", (new_runs, runs)
