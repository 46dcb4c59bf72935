"""The shared stream host: many pipelines' queries in one Spark application, one Dagster run each.

Pipeline A is run through ``HostedStream`` (what a Dagster run uses), pipeline B through a real
``stream_pipeline`` Dagster run in shared mode; both land in ONE host process and write exactly
their records. Stopping A ends only A's query; a second query for a running pipeline is refused;
a query whose owner process is gone is stopped by the host; pausing B ends its Dagster run
successfully, and the idle host exits by itself.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid

import pytest

from catalog.settings import get_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def shared_mode(monkeypatch, tmp_path, kit):
    """Shared-app settings for this process and the host it starts (own port and warehouse)."""
    env = {"SENTINEL_STREAM_SHARED_APP": "true", "SENTINEL_STREAM_HOST_PORT": str(_free_port()),
           "SENTINEL_STREAM_HOST_IDLE_SECONDS": "3", "SENTINEL_WAREHOUSE": str(tmp_path / "wh"),
           "SENTINEL_REDIS_URL": kit.REDIS_URL, "SENTINEL_TRIGGER_INTERVAL_SECONDS": "1",
           "JAVA_TOOL_OPTIONS": kit.TEST_JAVA_OPTIONS, "PYTHONUNBUFFERED": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield str(tmp_path / "wh")
    from orchestration.streams.stream_process import host_pid

    pid = host_pid()
    if pid is not None:  # the test failed half-way: do not leave the host behind
        subprocess.run(["kill", "-TERM", str(pid)], check=False)
        deadline = time.monotonic() + 120
        while host_pid() is not None and time.monotonic() < deadline:
            time.sleep(1)
    monkeypatch.undo()
    get_settings.cache_clear()


def test_pipelines_share_one_host(shared_mode, make_pipeline, spark_reader, kit, tmp_path):
    from dagster import DagsterEventType

    from orchestration.lib.catalog import CatalogResource
    from orchestration.streams.jobs import stream_pipeline, stream_run_config
    from orchestration.streams.stream_process import HostedStream, host_pid, host_request

    warehouse = shared_mode
    a, b = make_pipeline(kit.base_rules()), make_pipeline(kit.base_rules())

    def committed(tp) -> int:
        return kit.committed_of(tmp_path / "wh", tp)

    gen = kit.wave

    def wait(cond, timeout, what):
        t0 = time.monotonic()
        while not cond():
            assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
            time.sleep(0.5)

    a.produce(gen(a, 300, 1))
    b.produce(gen(b, 200, 2))
    hosted_a = HostedStream(a.id, f"test-a-{uuid.uuid4().hex[:8]}", 1.0)
    host = hosted_a.start()
    assert host_pid() == host

    result: dict = {}
    dagster_run = threading.Thread(target=lambda: result.setdefault("r", (
        stream_pipeline.execute_in_process(
            run_config=stream_run_config(b.id), resources={"catalog": CatalogResource()},
            raise_on_error=False))))
    dagster_run.start()
    wait(lambda: committed(a) == 300 and committed(b) == 200, 600, "both first waves")
    assert hosted_a.poll() is None
    assert host_pid() == host, "both pipelines run in the one host"
    for tp in (a, b):
        kit.check_sinks(spark_reader, tp, warehouse, kit.expected_alerts(tp))
    run_b = b.runs()[-1]
    assert run_b.status == "running" and run_b.dagster_run_id is not None

    # One query per pipeline: a second one for B is refused while B runs.
    code, answer = host_request("POST", "/queries", {"key": "dup", "pipeline_id": b.id})
    assert code == 409 and f"pipeline {b.id} already runs" in answer["detail"]

    # Stopping A ends A's query only.
    assert hosted_a.stop(120) == (0, True)
    assert a.runs()[-1].status == "stopped"
    b.produce(gen(b, 150, 3))
    wait(lambda: committed(b) == 350, 300, "B's second wave")
    kit.check_sinks(spark_reader, b, warehouse, kit.expected_alerts(b))

    # A query whose owner died is stopped by the host (no orphan keeps writing).
    gone = subprocess.Popen(["true"])
    gone.wait()
    code, _ = host_request("POST", "/queries", {"key": "orphan", "pipeline_id": a.id,
                                                "owner_pid": gone.pid})
    assert code == 202
    wait(lambda: host_request("GET", "/queries/orphan")[1]["state"] == "stopped", 180,
         "the orphaned query stopped")
    assert [r.status for r in a.runs()] == ["stopped", "stopped"]

    # Pausing B ends its Dagster run successfully; the idle host then exits by itself.
    b.set_status("paused")
    dagster_run.join(180)
    assert not dagster_run.is_alive()
    run = result["r"]
    assert run.success
    observed = [e for e in run.all_events if e.event_type == DagsterEventType.ASSET_OBSERVATION]
    assert any(o.event_specific_data.asset_observation.partition == str(b.id) for o in observed)
    assert [r.status for r in b.runs()] == ["stopped"]
    assert b.runs()[-1].dagster_run_id == run.run_id
    wait(lambda: host_pid() is None, 120, "the idle host to exit")
