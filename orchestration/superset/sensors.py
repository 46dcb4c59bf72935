"""Sensor ``superset_after_marts``: provision Superset again once a dbt build changed the marts."""

from typing import Any

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration.dbt.assets import BUILD_JOB
from orchestration.lib.tags import ACTIVE_RUN_STATUSES
from orchestration.superset.assets import MART_KEYS, PROVISION_JOB
from orchestration.superset.resources import SupersetResource


def latest_mart_event(instance: Any) -> int:
    """The storage id of the newest materialization of any gold mart (0: none yet)."""
    ids = [0]
    for key in MART_KEYS:
        ids += [r.storage_id for r in instance.fetch_materializations(key, limit=1).records]
    return max(ids)


@sensor(job=PROVISION_JOB, minimum_interval_seconds=20,
        default_status=DefaultSensorStatus.RUNNING,
        description="Provisions Superset again once a dbt build has materialized marts "
                    "(after the build finished), so new marts and pipelines need no manual "
                    "step.")
def superset_after_marts(context: SensorEvaluationContext, superset: SupersetResource):
    if not superset.url:
        return SkipReason("no Superset configured (SENTINEL_SUPERSET_URL unset)")
    latest = latest_mart_event(context.instance)
    seen = int(context.cursor or 0)
    if latest <= seen:
        return SkipReason("no new mart materialization")
    building = RunsFilter(job_name=BUILD_JOB.name, statuses=ACTIVE_RUN_STATUSES)
    if context.instance.get_runs(building, limit=1):
        return SkipReason("a dbt build is still running")
    if not superset.reachable():  # the cursor stays: provisioned when Superset answers
        return SkipReason(f"Superset not answering on {superset.url}")
    context.update_cursor(str(latest))
    return RunRequest(run_key=f"marts-{latest}", tags={"sentinel/trigger": "marts_built"})


SUPERSET_SENSORS = [superset_after_marts]
