"""pipeline_watcher against the real catalog (Postgres) and a real, temporary Dagster instance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    SensorResult,
    SkipReason,
    build_sensor_context,
)
from sqlalchemy import delete, func, insert, select, update

from catalog.db import get_engine
from catalog.tables import pipelines, stream_runs
from orchestration.lib.catalog import CatalogResource
from orchestration.streams.jobs import PIPELINE_TAG, SCHEMA_TAG, stream_pipeline, stream_run_config
from orchestration.streams.reconcile import Terminate
from orchestration.streams.resources import StreamPolicyResource
from orchestration.streams.sensors import _terminate, pipeline_watcher
from tests.support import auth

pytestmark = pytest.mark.integration

# Pipelines of this module are named orch-<RUN>-…; the sensor is scoped to them so that
# pipelines other tests left in the shared test catalog never change what it decides here.
RUN = uuid.uuid4().hex[:6]

SCHEMA = [{"name": "txn_id", "type": "string", "nullable": False},
          {"name": "amount", "type": "double", "nullable": True}]


@pytest.fixture
def instance(tmp_path) -> Iterator[DagsterInstance]:
    overrides = {"run_coordinator": {"module": "dagster.core.run_coordinator",
                                     "class": "QueuedRunCoordinator"}}
    with DagsterInstance.local_temp(str(tmp_path), overrides=overrides) as inst:
        yield inst


@pytest.fixture
def make_pipeline(catalog_db) -> Iterator:
    created: list[int] = []

    def make(status: str = "active") -> int:
        name = f"orch-{RUN}-{uuid.uuid4().hex[:10]}"
        with get_engine().begin() as conn:
            pid = conn.execute(insert(pipelines).values(
                name=name, kafka_topic=name, status=status, key_field="txn_id", schema=SCHEMA,
            ).returning(pipelines.c.id)).scalar_one()
        created.append(pid)
        return pid

    yield make
    with get_engine().begin() as conn:
        conn.execute(delete(pipelines).where(pipelines.c.id.in_(created)))


def set_status(pid: int, status: str, **extra) -> None:
    with get_engine().begin() as conn:
        conn.execute(update(pipelines).where(pipelines.c.id == pid)
                     .values(status=status, updated_at=pipelines.c.updated_at, **extra))


def evaluate(instance, **policy) -> SensorResult | SkipReason:
    policy.setdefault("only_names_like", f"orch-{RUN}-%")
    resources = {"catalog": CatalogResource(), "stream_policy": StreamPolicyResource(**policy)}
    with build_sensor_context(instance=instance, resources=resources) as ctx:
        return pipeline_watcher(ctx)


def requests_for(result, pid: int) -> list:
    reqs = result.run_requests if isinstance(result, SensorResult) else []
    return [r for r in reqs or [] if r.tags[PIPELINE_TAG] == str(pid)]


def skip_text(result) -> str:
    if isinstance(result, SkipReason):
        return result.skip_message or ""
    return result.skip_reason.skip_message if result.skip_reason else ""


def add_run(instance, pid: int, status: DagsterRunStatus, version: int = 1):
    run = instance.create_run_for_job(
        job_def=stream_pipeline, run_config=stream_run_config(pid), status=status,
        tags={PIPELINE_TAG: str(pid), SCHEMA_TAG: str(version)})
    return run


def test_active_pipeline_gets_a_run_and_a_partition(instance, make_pipeline):
    active, paused = make_pipeline("active"), make_pipeline("paused")
    result = evaluate(instance)
    (req,) = requests_for(result, active)
    assert req.run_config == stream_run_config(active)
    assert req.tags[SCHEMA_TAG] == "1" and req.run_key == f"pipeline-{active}:v1:after-none"
    assert not requests_for(result, paused)
    added = {k for r in result.dynamic_partitions_requests for k in r.partition_keys}
    assert {str(active), str(paused)} <= added


def test_live_run_means_no_second_launch(instance, make_pipeline):
    pid = make_pipeline("active")
    add_run(instance, pid, DagsterRunStatus.STARTED)
    result = evaluate(instance)
    assert not requests_for(result, pid)


def test_paused_pipeline_run_is_canceled(instance, make_pipeline):
    pid = make_pipeline("active")
    run = add_run(instance, pid, DagsterRunStatus.STARTED)
    set_status(pid, "paused")
    # the stream stops itself after its batch: within the grace period the watcher only waits
    assert f"run {run.run_id[:8]} stopping by itself" in skip_text(evaluate(instance))
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
    result = evaluate(instance, stop_grace_seconds=0)  # still live after it: terminated
    assert not requests_for(result, pid)
    assert f"pipeline {pid}: terminating run {run.run_id[:8]}" in skip_text(result)
    # no run worker to signal in this test: the run waits in CANCELING for run monitoring
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELING
    assert "is paused: no stream to stop" in skip_text(evaluate(instance))


def test_a_run_that_ended_since_the_read_is_not_terminated(instance, make_pipeline):
    """The watcher reads the runs, decides, then cancels: a run that succeeded in between (its
    stream saw the pause itself) must stay a success, not become CANCELING then FAILURE."""
    pid = make_pipeline("paused")
    done = add_run(instance, pid, DagsterRunStatus.SUCCESS)
    live = add_run(instance, pid, DagsterRunStatus.STARTED)
    with build_sensor_context(instance=instance) as ctx:
        assert not _terminate(ctx, Terminate(pid, done.run_id, "pipeline is paused"))
        assert _terminate(ctx, Terminate(pid, live.run_id, "pipeline is paused"))
    assert instance.get_run_by_id(done.run_id).status == DagsterRunStatus.SUCCESS
    assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.CANCELING


def test_schema_change_cancels_and_relaunches(instance, make_pipeline):
    pid = make_pipeline("active")
    old = add_run(instance, pid, DagsterRunStatus.STARTED, version=1)
    set_status(pid, "active", schema_version=2)
    assert "stopping by itself (schema version 1 -> 2)" in skip_text(evaluate(instance))
    evaluate(instance, stop_grace_seconds=0)
    assert instance.get_run_by_id(old.run_id).status == DagsterRunStatus.CANCELING
    assert "stopping" in skip_text(evaluate(instance, stop_grace_seconds=0))  # one writer only
    instance.report_run_canceled(instance.get_run_by_id(old.run_id))
    (req,) = requests_for(evaluate(instance), pid)
    assert req.tags[SCHEMA_TAG] == "2"


def test_failed_run_backs_off_then_gives_up_and_health_shows_failing(
        instance, make_pipeline, client, api_keys):
    pid = make_pipeline("active")
    run = add_run(instance, pid, DagsterRunStatus.STARTED)
    with get_engine().begin() as conn:
        conn.execute(insert(stream_runs).values(
            pipeline_id=pid, dagster_run_id=run.run_id, status="failed",
            last_error="redis sink down past retries", ended_at=func.now()))
    instance.report_run_failed(run)
    result = evaluate(instance, backoff_base_seconds=300)
    assert not requests_for(result, pid)
    assert "retry 2/5" in skip_text(result) and "redis sink down" in skip_text(result)
    (req,) = requests_for(evaluate(instance, backoff_base_seconds=0), pid)
    assert req.tags["sentinel/attempt"] == "2"

    result = evaluate(instance, max_attempts=1)
    assert f"pipeline {pid}: FAILING after 1 attempts" in skip_text(result)
    health = client.get(f"/api/pipelines/{pid}/health", headers=auth(api_keys["viewer"])).json()
    assert health["state"] == "failing"
    assert "redis sink down past retries" in health["run"]["last_error"]


def test_stream_started_outside_dagster_is_respected(instance, make_pipeline):
    pid = make_pipeline("active")
    with get_engine().begin() as conn:
        conn.execute(insert(stream_runs).values(pipeline_id=pid, status="running"))
    result = evaluate(instance)
    assert not requests_for(result, pid)
    assert "outside Dagster" in skip_text(result)


def test_watcher_owns_only_the_pipelines_it_is_told_to(instance, make_pipeline):
    mine, other = make_pipeline("active"), make_pipeline("paused")
    other_run = add_run(instance, other, DagsterRunStatus.STARTED)
    with get_engine().connect() as conn:
        name = conn.execute(select(pipelines.c.name).where(pipelines.c.id == mine)).scalar_one()
    result = evaluate(instance, only_names_like=name)
    assert requests_for(result, mine) and not requests_for(result, other)
    assert instance.get_run_by_id(other_run.run_id).status == DagsterRunStatus.STARTED
