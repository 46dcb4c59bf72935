"""The dbt marts refresh on a schedule and when the lake changes, by day partition.

Evaluated with Dagster's own test contexts against the real code location (``defs``), the
catalog database and Delta logs written here; no Spark and no SQL endpoint needed.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    build_schedule_context,
    build_sensor_context,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._core.test_utils import create_run_for_test
from sqlalchemy import delete, insert

from catalog.db import get_engine
from catalog.tables import pipelines
from orchestration.dbt.project import ensure_manifest
from orchestration.dbt.sensors import LAKE_CHANGE_INTERVAL
from orchestration.definitions import defs
from orchestration.lake.resources import LakeResource, ObjectStoreResource
from orchestration.lib.catalog import CatalogResource

pytestmark = pytest.mark.integration
JOB = "build_lakehouse_models"


def dbt_model_keys() -> set[str]:
    """Every model of the dbt manifest as a Dagster asset key (``<schema>/<model>``)."""
    manifest = json.loads(ensure_manifest().read_text())
    return {f"{n['config']['schema']}/{n['name']}" for n in manifest["nodes"].values()
            if n["resource_type"] == "model"}


def test_the_build_job_covers_every_dbt_model() -> None:
    keys = {k.to_user_string()
            for k in defs.resolve_job_def(JOB).asset_layer.executable_asset_keys}
    assert keys == dbt_model_keys()
    assert len(keys) == 9


def test_the_day_facts_are_partitioned_by_day_and_the_rest_not() -> None:
    job = defs.resolve_job_def(JOB)
    daily = {"gold/fct_alerts_daily", "gold/fct_alerts_hourly", "gold/fct_rule_effectiveness",
             "gold/fct_pipeline_health_daily", "gold/fct_quarantine_reasons"}
    for key in job.asset_layer.executable_asset_keys:
        partitions = job.asset_layer.get(key).partitions_def
        if key.to_user_string() in daily:
            assert partitions is not None and partitions.get_first_partition_key() == "2020-01-01"
        else:
            assert partitions is None, key


def schedule_tick(hour: int, minute: int = 25):
    schedule = defs.resolve_schedule_def("lakehouse_models_hourly")
    tick = datetime(2026, 3, 1, hour, minute, tzinfo=UTC)
    with DagsterInstance.ephemeral() as instance:
        return schedule.evaluate_tick(build_schedule_context(
            instance=instance, scheduled_execution_time=tick,
            repository_def=defs.get_repository_def()))


def test_hourly_schedule_requests_todays_partition() -> None:
    schedule = defs.resolve_schedule_def("lakehouse_models_hourly")
    assert schedule.cron_schedule == "25 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == JOB
    data = schedule_tick(7)
    assert data.skip_message is None
    (req,) = data.run_requests
    assert req.job_name in (None, JOB)
    assert req.partition_key == "2026-03-01"


def test_hourly_schedule_also_rebuilds_yesterday_just_after_midnight() -> None:
    (req,) = schedule_tick(0).run_requests
    assert req.partition_key is None
    assert (req.tags[ASSET_PARTITION_RANGE_START_TAG],
            req.tags[ASSET_PARTITION_RANGE_END_TAG]) == ("2026-02-28", "2026-03-01")


def commit(table: Path, version: int, *days: str) -> None:
    """A Delta commit adding one file to each ``event_date`` partition of ``days``."""
    log = table / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    lines = [{"commitInfo": {"timestamp": 1}}] + [
        {"add": {"path": f"event_date={d}/part-{version}.parquet", "dataChange": True,
                 "partitionValues": {"event_date": d}}} for d in days]
    (log / f"{version:020d}.json").write_text("".join(json.dumps(x) + "\n" for x in lines))


def days(req) -> tuple[str, str]:
    """(first, last) day partition of a run request."""
    if req.partition_key:
        return req.partition_key, req.partition_key
    return req.tags[ASSET_PARTITION_RANGE_START_TAG], req.tags[ASSET_PARTITION_RANGE_END_TAG]


@pytest.fixture()
def lake_pipeline(catalog_db: None, tmp_path: Path):
    name = f"it-trigger-{uuid.uuid4().hex[:8]}"
    with get_engine().begin() as conn:
        pid = conn.execute(insert(pipelines).values(
            name=name, kafka_topic=name, status="active",
            schema=[{"name": "id", "type": "string", "nullable": False}],
        ).returning(pipelines.c.id)).scalar_one()
    yield pid, tmp_path
    with get_engine().begin() as conn:
        conn.execute(delete(pipelines).where(pipelines.c.id == pid))


def test_lake_change_sensor_builds_when_bronze_moves_and_only_then(lake_pipeline,
                                                                   monkeypatch) -> None:
    import orchestration.dbt.sensors as dbt_sensors

    up = {"value": True}
    monkeypatch.setattr(dbt_sensors, "endpoint_up", lambda: up["value"])
    monkeypatch.setattr(dbt_sensors, "utc_now", lambda: datetime(2026, 3, 20, 12, tzinfo=UTC))
    pid, root = lake_pipeline
    sensor = defs.resolve_sensor_def("lakehouse_models_on_lake_change")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == LAKE_CHANGE_INTERVAL
    assert sensor.job_name == JOB
    resources = {"catalog": CatalogResource(), "lake": LakeResource(warehouse_root=str(root)),
                 "object_store": ObjectStoreResource()}
    events = root / "bronze" / f"pipeline_{pid}" / "events"
    alerts = root / "silver" / f"pipeline_{pid}" / "alerts"

    with DagsterInstance.ephemeral() as instance:
        def tick(cursor: str | None):
            ctx = build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                       repository_def=defs.get_repository_def())
            return sensor.evaluate_tick(ctx)

        first = tick(None)  # the stream has not written anything yet
        assert not first.run_requests and "no lake tables" in first.skip_message

        commit(events, 0, "2026-03-20")
        built = tick(None)
        (req,) = built.run_requests
        assert req.job_name in (None, JOB)
        assert days(req) == ("2026-03-20", "2026-03-20")  # today's partition
        assert req.tags["sentinel/changed_tables"] == f"{pid}/bronze_events"
        assert json.loads(built.cursor) == {f"{pid}/bronze_events": 0}

        same = tick(built.cursor)
        assert not same.run_requests and "no new commits" in same.skip_message

        commit(events, 1, "2026-03-17")  # a late event
        commit(events, 2, "2026-03-20")  # two micro-batches since the last build: one rebuild
        commit(alerts, 0)  # no add action: no day of its own
        again = tick(same.cursor or built.cursor)
        (req2,) = again.run_requests
        assert req2.run_key != req.run_key
        assert days(req2) == ("2026-03-17", "2026-03-20")  # the late day to today, one run
        assert req2.tags["sentinel/changed_tables"] == f"{pid}/bronze_events,{pid}/silver_alerts"
        assert json.loads(again.cursor) == {f"{pid}/bronze_events": 2, f"{pid}/silver_alerts": 0}

        # while the SQL endpoint is down or a build is running, a change waits (the cursor
        # stays) and fires afterwards
        commit(events, 3, "2026-03-19")
        up["value"] = False
        down = tick(again.cursor)
        assert not down.run_requests and "endpoint is down" in down.skip_message
        assert down.cursor in (None, again.cursor)
        up["value"] = True
        run = create_run_for_test(instance, job_name=JOB, status=DagsterRunStatus.STARTED)
        busy = tick(again.cursor)
        assert not busy.run_requests and run.run_id in busy.skip_message
        assert busy.cursor in (None, again.cursor)
        instance.report_run_failed(run)
        after = tick(again.cursor)
        (req3,) = after.run_requests
        assert days(req3) == ("2026-03-19", "2026-03-20")  # only the commit since the last run
        assert json.loads(after.cursor)[f"{pid}/bronze_events"] == 3
