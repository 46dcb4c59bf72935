"""Several pipelines as several queries in ONE streaming job (one Spark application).

Two pipelines share one ``streaming.job`` process: each query writes exactly its own records to
its own sinks; pausing one stops only that query (its ``stream_runs`` row ends, the process and
the other query go on, the paused pipeline reads nothing more); pausing the last one ends the
job with exit code 0.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


def test_two_pipelines_in_one_job(make_pipeline, job_factory, spark_reader, kit, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    a, b = make_pipeline(kit.base_rules()), make_pipeline(kit.base_rules())

    def committed(tp) -> int:
        return kit.committed_of(tmp_path / "warehouse", tp)

    gen = kit.wave

    a.produce(gen(a, 300, 1))
    b.produce(gen(b, 200, 2))
    job = job_factory([a.id, b.id], {"SENTINEL_WAREHOUSE": warehouse})
    job.start()
    kit.wait_for(lambda: committed(a) == 300 and committed(b) == 200, 600,
                 "both pipelines' first wave committed", job)
    for tp in (a, b):
        expected = kit.expected_alerts(tp)
        assert expected, "the generated data must break some rules"
        kit.check_sinks(spark_reader, tp, warehouse, expected)
    run_a, run_b = a.runs()[-1], b.runs()[-1]
    assert run_a.status == run_b.status == "running"
    assert run_a.query_id != run_b.query_id
    assert (run_a.input_rows, run_b.input_rows) == (300, 200)

    # Pausing A stops A's query only: the job and B's query keep going.
    a.set_status("paused")
    kit.wait_for(lambda: a.runs()[-1].status == "stopped", 120, "A's query stopped", job)
    assert a.runs()[-1].last_error == "pipeline paused"
    a.produce(gen(a, 50, 3))
    b.produce(gen(b, 150, 4))
    kit.wait_for(lambda: committed(b) == 350, 300, "B's second wave committed", job)
    assert job.alive(), job.log_tail()
    assert committed(a) == 300, "a paused pipeline's query must not read"
    assert b.runs()[-1].status == "running" and b.runs()[-1].input_rows == 350
    kit.check_sinks(spark_reader, b, warehouse, kit.expected_alerts(b))

    b.set_status("paused")
    assert job.wait_exit(120) == 0, job.log_tail()
    assert [r.status for r in a.runs()] == ["stopped"]
    assert [r.status for r in b.runs()] == ["stopped"]
