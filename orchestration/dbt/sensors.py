"""What triggers dbt besides the schedule: new pipelines' tables, and new commits in the lake.

- ``lakehouse_tables_sync`` registers new/changed pipelines' Delta tables every minute, so SQL
  clients see new pipelines without waiting for a build;
- ``lakehouse_models_on_lake_change`` compares the latest Delta version of every pipeline's
  bronze, quarantine and alerts tables with those of the last build it launched and, when any
  moved, reads the new commits to find the days they touched
  (``orchestration.lake.delta_log.touched_days``); it launches one run for the partitions from
  the first touched day to the last (today included; every day since ``DAY_START`` when a
  commit is unreadable), at most every ``LAKE_CHANGE_INTERVAL`` seconds, never while a build is
  queued or running nor while the SQL endpoint is down; run key = the versions, so a given
  state of the lake is built once.
"""

import hashlib
import json
from datetime import date

from dagster import (
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration.dbt.assets import BUILD_JOB
from orchestration.dbt.partitions import days_to_build, run_request_for_days, utc_now
from orchestration.lake.delta_log import is_s3, latest_delta_version, touched_days
from orchestration.lake.registration import LakehouseUnavailable, connect, register_all
from orchestration.lake.resources import LakeResource, ObjectStoreResource
from orchestration.lib.catalog import CatalogResource
from orchestration.lib.tags import ACTIVE_RUN_STATUSES


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Registers new/changed pipelines' Delta tables in the SQL endpoint and "
                    "rebuilds the union views (a no-op when nothing changed).")
def lakehouse_tables_sync(context: SensorEvaluationContext):
    try:
        report = register_all()
    except LakehouseUnavailable as exc:
        return SkipReason(f"SQL endpoint down: {exc}")
    return SkipReason(report.summary())


LAKE_CHANGE_INTERVAL = 600


def lake_tables(catalog: CatalogResource, lake: LakeResource,
                object_store: ObjectStoreResource) -> tuple[dict[str, tuple[str, int]], object]:
    """``{"<pipeline id>/<asset>": (path, latest Delta version)}`` of every existing lake table
    and the S3 client used (None on a local warehouse)."""
    found: dict[str, tuple[str, int]] = {}
    s3 = None
    for p in catalog.pipelines():
        for key, path in lake.tables(p["id"]).items():
            if s3 is None and is_s3(path):
                s3 = object_store._s3()
            version = latest_delta_version(path, s3)
            if version is not None:
                found[f"{p['id']}/{key}"] = (path, version)
    return found, s3


def lake_versions(catalog: CatalogResource, lake: LakeResource,
                  object_store: ObjectStoreResource) -> dict[str, int]:
    """``{"<pipeline id>/<asset>": latest Delta version}`` of every existing lake table."""
    return {k: v for k, (_, v) in lake_tables(catalog, lake, object_store)[0].items()}


def endpoint_up() -> bool:
    """True when the Spark SQL endpoint accepts a session (a build would fail without it)."""
    try:
        connect().close()
    except LakehouseUnavailable:
        return False
    return True


@sensor(job=BUILD_JOB, minimum_interval_seconds=LAKE_CHANGE_INTERVAL,
        default_status=DefaultSensorStatus.RUNNING,
        description="Rebuilds the dbt models, for the days touched, when a pipeline's "
                    "bronze/quarantine/alerts Delta tables have new commits since the last "
                    "build this sensor launched.")
def lakehouse_models_on_lake_change(context: SensorEvaluationContext, catalog: CatalogResource,
                                    lake: LakeResource, object_store: ObjectStoreResource):
    tables, s3 = lake_tables(catalog, lake, object_store)
    versions = {k: v for k, (_, v) in tables.items()}
    if not versions:
        return SkipReason("no lake tables yet")
    previous = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(k for k, v in versions.items() if previous.get(k) != v)
    if not changed:
        return SkipReason(f"no new commits in {len(versions)} lake tables")
    if not endpoint_up():  # the cursor stays: the first tick with the endpoint up builds
        return SkipReason(f"{len(changed)} tables changed; the SQL endpoint is down")
    active = context.instance.get_runs(
        RunsFilter(job_name=BUILD_JOB.name, statuses=ACTIVE_RUN_STATUSES), limit=1)
    if active:  # the cursor stays: the next tick sees the same change
        return SkipReason(f"{len(changed)} tables changed; build run {active[0].run_id} "
                          "is still in progress")
    touched: set[date] | None = set()
    for key in changed:
        path, latest = tables[key]
        since = previous.get(key)
        if since is not None and since >= latest:  # the table was recreated: read it all
            since = None
        days = touched_days(path, since, latest, s3)
        touched = None if days is None or touched is None else touched | days
    first, last = days_to_build(touched, utc_now())
    context.update_cursor(json.dumps(versions, sort_keys=True))
    state = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16]
    return run_request_for_days(first, last, run_key=f"lake-{state}", tags={
        "sentinel/kind": "dbt", "sentinel/trigger": "lake_change",
        "sentinel/changed_tables": ",".join(changed)[:200],
        "sentinel/days": f"{first.isoformat()}..{last.isoformat()}"})


DBT_SENSORS = [lakehouse_tables_sync, lakehouse_models_on_lake_change]
