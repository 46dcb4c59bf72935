"""The code location loads, and its jobs run against the real catalog."""

from __future__ import annotations

import json
import uuid

import pytest
from dagster import DagsterEventType, DefaultSensorStatus, Definitions
from sqlalchemy import delete, insert

from catalog.db import get_engine
from catalog.tables import pipelines
from orchestration.definitions import defs
from orchestration.lake.jobs import observe_lake_job
from orchestration.lake.resources import LakeResource, ObjectStoreResource
from orchestration.lib.catalog import CatalogResource
from orchestration.streams.jobs import stream_pipeline, stream_run_config

pytestmark = pytest.mark.integration


def test_definitions_load_with_every_piece():
    Definitions.validate_loadable(defs)
    for name in ("stream_pipeline", "compact_lake", "check_lake", "observe_lake_job"):
        assert defs.resolve_job_def(name).name == name
    sensor = defs.resolve_sensor_def("pipeline_watcher")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 15
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"bronze_events", "quarantine", "silver_alerts", "compaction"} <= keys
    assert {"fct_alerts_hourly", "dim_entity_risk"} <= {k.split("/")[-1] for k in keys}
    assert {s.name for s in defs.schedules} == {
        "hourly_compaction", "lake_observations", "hourly_checks", "lakehouse_models_hourly"}
    assert defs.resolve_sensor_def("lakehouse_tables_sync") is not None


def test_stream_run_fails_with_the_streams_own_error(catalog_db):
    missing = 987_654_321
    result = stream_pipeline.execute_in_process(
        run_config=stream_run_config(missing), resources={"catalog": CatalogResource()},
        raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    text = str(failure.event_specific_data.error)
    assert f"pipeline {missing} does not exist" in text and "exited with 1" in text


def test_observe_lake_reports_delta_statistics(catalog_db, tmp_path):
    name = f"observe-{uuid.uuid4().hex[:8]}"
    with get_engine().begin() as conn:
        pid = conn.execute(insert(pipelines).values(
            name=name, kafka_topic=name, status="active",
            schema=[{"name": "id", "type": "string", "nullable": False}],
        ).returning(pipelines.c.id)).scalar_one()
    log = tmp_path / "bronze" / f"pipeline_{pid}" / "events" / "_delta_log"
    log.mkdir(parents=True)
    add = {"add": {"path": "p.parquet", "size": 10, "stats": json.dumps({"numRecords": 3})}}
    (log / f"{0:020d}.json").write_text(json.dumps({"commitInfo": {"timestamp": 1}}) + "\n"
                                        + json.dumps(add) + "\n")
    try:
        result = observe_lake_job.execute_in_process(resources={
            "catalog": CatalogResource(), "object_store": ObjectStoreResource(),
            "lake": LakeResource(warehouse_root=str(tmp_path))})
    finally:
        with get_engine().begin() as conn:
            conn.execute(delete(pipelines).where(pipelines.c.id == pid))
    obs = [e.event_specific_data.asset_observation for e in result.all_events
           if e.event_type == DagsterEventType.ASSET_OBSERVATION]
    mine = {o.asset_key.to_user_string(): o for o in obs if o.partition == str(pid)}
    assert set(mine) == {"bronze_events", "quarantine", "silver_alerts"}
    bronze = mine["bronze_events"].metadata
    assert bronze["rows"].value == 3 and bronze["files"].value == 1
    assert mine["quarantine"].metadata["delta_version"].value == -1  # no table yet
