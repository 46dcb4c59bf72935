"""The dbt marts refresh on a schedule and when the lake changes (issue 5, item 2).

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
from dagster._core.test_utils import create_run_for_test
from sqlalchemy import delete, insert

from catalog.db import get_engine
from catalog.tables import pipelines
from orchestration.dbt_assets import LAKE_CHANGE_INTERVAL, ensure_manifest
from orchestration.definitions import defs
from orchestration.resources import CatalogResource, LakeResource, ObjectStoreResource

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


def test_hourly_schedule_requests_a_build_of_the_marts() -> None:
    schedule = defs.resolve_schedule_def("lakehouse_models_hourly")
    assert schedule.cron_schedule == "25 * * * *"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == JOB
    tick = datetime(2026, 3, 1, 7, 25, tzinfo=UTC)
    with DagsterInstance.ephemeral() as instance:
        data = schedule.evaluate_tick(build_schedule_context(instance=instance,
                                                             scheduled_execution_time=tick))
    assert data.skip_message is None
    assert len(data.run_requests) == 1
    assert data.run_requests[0].job_name in (None, JOB)


def commit(table: Path, version: int) -> None:
    log = table / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    (log / f"{version:020d}.json").write_text(json.dumps({"commitInfo": {"timestamp": 1}}) + "\n")


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
    import orchestration.dbt_assets as dbt_assets

    up = {"value": True}
    monkeypatch.setattr(dbt_assets, "endpoint_up", lambda: up["value"])
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
            ctx = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
            return sensor.evaluate_tick(ctx)

        first = tick(None)  # the stream has not written anything yet
        assert not first.run_requests and "no lake tables" in first.skip_message

        commit(events, 0)
        built = tick(None)
        (req,) = built.run_requests
        assert req.job_name in (None, JOB)
        assert req.tags["sentinel/changed_tables"] == f"{pid}/bronze_events"
        assert json.loads(built.cursor) == {f"{pid}/bronze_events": 0}

        same = tick(built.cursor)
        assert not same.run_requests and "no new commits" in same.skip_message

        commit(events, 1)
        commit(events, 2)  # two micro-batches since the last build: one rebuild
        commit(alerts, 0)
        again = tick(same.cursor or built.cursor)
        (req2,) = again.run_requests
        assert req2.run_key != req.run_key
        assert req2.tags["sentinel/changed_tables"] == f"{pid}/bronze_events,{pid}/silver_alerts"
        assert json.loads(again.cursor) == {f"{pid}/bronze_events": 2, f"{pid}/silver_alerts": 0}

        # while the SQL endpoint is down or a build is running, a change waits (the cursor
        # stays) and fires afterwards
        commit(events, 3)
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
        assert json.loads(after.cursor)[f"{pid}/bronze_events"] == 3
