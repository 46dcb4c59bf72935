"""backtest_queue launches one rule_backtest run per queued job; a failed child fails the run
with the job's own reason (real catalog, real Dagster instance, real child process)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    SkipReason,
    build_sensor_context,
)
from sqlalchemy import delete, insert, select

from catalog.db import get_engine
from catalog.tables import backtests, pipelines
from orchestration.backtests.jobs import BACKTEST_TAG, backtest_run_config, rule_backtest
from orchestration.backtests.sensors import backtest_queue
from orchestration.definitions import defs
from orchestration.lib.catalog import CatalogResource
from orchestration.streams.resources import StreamPolicyResource

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:6]
SCHEMA = [{"name": "txn_id", "type": "string", "nullable": False}]


@pytest.fixture
def pipeline(catalog_db) -> Iterator[int]:
    name = f"orchbt-{RUN}-{uuid.uuid4().hex[:8]}"
    with get_engine().begin() as conn:
        pid = conn.execute(insert(pipelines).values(
            name=name, kafka_topic=name, status="active", schema=SCHEMA,
        ).returning(pipelines.c.id)).scalar_one()
    yield pid
    with get_engine().begin() as conn:
        conn.execute(delete(pipelines).where(pipelines.c.id == pid))


def add_job(pid: int, status: str = "queued", kind: str = "backtest") -> int:
    now = datetime.now(UTC)
    with get_engine().begin() as conn:
        return conn.execute(insert(backtests).values(
            pipeline_id=pid, kind=kind, rule_expression="txn_id = 'x'", status=status,
            since=now - timedelta(days=1), until=now, requested_by="test",
        ).returning(backtests.c.id)).scalar_one()


def evaluate(instance: DagsterInstance):
    resources = {"catalog": CatalogResource(),
                 "stream_policy": StreamPolicyResource(only_names_like=f"orchbt-{RUN}-%")}
    with build_sensor_context(instance=instance, resources=resources) as ctx:
        return backtest_queue(ctx)


def test_sensor_requests_one_run_per_queued_job(pipeline, tmp_path):
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        assert isinstance(evaluate(instance), SkipReason)
        first, second = add_job(pipeline), add_job(pipeline, kind="lookback")
        add_job(pipeline, status="succeeded")
        add_job(pipeline, status="failed")
        requests = evaluate(instance)
    assert [r.run_key for r in requests] == [f"backtest-{first}", f"backtest-{second}"]
    assert requests[0].run_config == backtest_run_config(first)
    assert requests[1].tags[BACKTEST_TAG] == str(second)
    assert requests[1].tags["sentinel/backtest_kind"] == "lookback"
    sensor = defs.resolve_sensor_def("backtest_queue")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert defs.resolve_job_def("rule_backtest").name == "rule_backtest"


def test_run_fails_with_the_jobs_own_reason(pipeline):
    done = add_job(pipeline, status="succeeded")
    result = rule_backtest.execute_in_process(
        run_config=backtest_run_config(done), resources={"catalog": CatalogResource()},
        raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    text = str(failure.event_specific_data.error)
    assert f"backtest {done} failed (exit 2)" in text and "is succeeded, not queued" in text
    with get_engine().connect() as conn:
        status = conn.execute(select(backtests.c.status).where(backtests.c.id == done)
                              ).scalar_one()
    assert status == "succeeded"  # a refused re-run does not touch the finished job
