"""The dbt project ``lakehouse_models`` as Dagster assets (issue 5, DESIGN §7-§8).

Every dbt model is an asset (group ``lakehouse_models``) and every dbt test an asset check.
The dbt sources map onto the lake's observed assets (``bronze_events``, ``quarantine``,
``silver_alerts`` of ``orchestration.assets``; see ``meta.dagster.asset_key`` in
``lakehouse_models/models/staging/_sources.yml``), so the models sit downstream of them.

Before each build the union views are synced (``catalog.lakehouse_tables.register_all``,
cheap when nothing changed). ``lakehouse_tables_sync`` does the same every minute so SQL
clients see new pipelines without waiting for a build; the models (full refresh; each model
is a small aggregate) are rebuilt by the job ``build_lakehouse_models``, launched

- on a schedule: ``lakehouse_models_hourly``, at minute 25 of every hour;
- when the lake changes: the sensor ``lakehouse_models_on_lake_change`` compares the latest
  Delta version of every pipeline's bronze, quarantine and alerts tables with those of the last
  build it launched, and launches one when any moved (at most every ``LAKE_CHANGE_INTERVAL``
  seconds, never while a build is queued or running nor while the SQL endpoint is down; run
  key = the versions, so a given state of the lake is built once).

The manifest is built at load time with ``dbt parse`` when it is missing or older than the
project's files (``dagster dev`` re-parses through ``prepare_if_dev``).
"""


import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    build_schedule_from_dbt_selection,
    dbt_assets,
)

from orchestration.resources import CatalogResource, LakeResource, ObjectStoreResource

PROJECT_DIR = Path(__file__).resolve().parent.parent / "lakehouse_models"
GROUP = "lakehouse_models"



def _find_dbt() -> str:
    """The venv's dbt even when the venv is not activated (dagster started by path, or a code
    server whose interpreter path points outside the venv)."""
    candidates = [
        Path(sys.executable).with_name("dbt"),
        Path(sys.prefix) / "bin" / "dbt",
        PROJECT_DIR.parent / ".venv" / "bin" / "dbt",
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return shutil.which("dbt") or "dbt"


DBT_EXECUTABLE = _find_dbt()

lakehouse_project = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR)


def _manifest_is_stale() -> bool:
    manifest = lakehouse_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [p for ext in ("*.sql", "*.yml") for p in PROJECT_DIR.rglob(ext)
               if "target" not in p.parts]
    return any(p.stat().st_mtime > built for p in sources)


def ensure_manifest() -> Path:
    """``target/manifest.json`` of the project, parsed again when stale.

    (Not ``prepare_if_dev()``: it runs a bare ``dbt`` from PATH, which a venv that is not
    activated does not have.)"""
    if _manifest_is_stale():
        DbtCliResource(project_dir=lakehouse_project, dbt_executable=DBT_EXECUTABLE).cli(
            ["parse", "--quiet"], target_path=lakehouse_project.target_path,
        ).wait()
    return lakehouse_project.manifest_path


class SentinelDbtTranslator(DagsterDbtTranslator):
    """Models in one group; tests as asset checks (the default in dagster-dbt 0.29)."""

    def get_group_name(self, dbt_resource_props):  # type: ignore[override]
        if dbt_resource_props.get("resource_type") == "source":
            return super().get_group_name(dbt_resource_props)
        return GROUP


@dbt_assets(
    manifest=ensure_manifest(),
    project=lakehouse_project,
    dagster_dbt_translator=SentinelDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    name="lakehouse_models",
    op_tags={"sentinel/kind": "dbt"},
)
def lakehouse_models(context: AssetExecutionContext, dbt: DbtCliResource):
    """Sync the union views, then ``dbt build`` the selected models and their tests."""
    from catalog.lakehouse_tables import register_all

    report = register_all()
    context.log.info("lakehouse tables: %s", report.summary())
    yield from dbt.cli(["build"], context=context).stream()


lakehouse_models_hourly = build_schedule_from_dbt_selection(
    [lakehouse_models],
    job_name="build_lakehouse_models",
    cron_schedule="25 * * * *",
    dbt_select="fqn:*",
    schedule_name="lakehouse_models_hourly",
    tags={"sentinel/kind": "dbt"},
    default_status=DefaultScheduleStatus.RUNNING,
)


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Registers new/changed pipelines' Delta tables in the SQL endpoint and "
                    "rebuilds the union views (a no-op when nothing changed).")
def lakehouse_tables_sync(context: SensorEvaluationContext):
    from catalog.lakehouse_tables import LakehouseUnavailable, register_all

    try:
        report = register_all()
    except LakehouseUnavailable as exc:
        return SkipReason(f"SQL endpoint down: {exc}")
    return SkipReason(report.summary())


LAKE_CHANGE_INTERVAL = 600
BUILD_JOB = lakehouse_models_hourly.job
_ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
           DagsterRunStatus.STARTED]
_LOG_ENTRY = re.compile(r"^(\d{20})\.(json|checkpoint\..*)$")


def latest_delta_version(path: str, s3_client=None) -> int | None:
    """The newest version in a Delta table's ``_delta_log`` listing (None: no table there).

    Only the file names are read (no state replay): cheap on disk and on S3/R2."""
    names: list[str] = []
    if path.startswith(("s3a://", "s3://")):
        bucket, _, key = path.split("://", 1)[1].partition("/")
        prefix = f"{key.rstrip('/')}/_delta_log/"
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=prefix):
            names += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
    else:
        log_dir = Path(path.removeprefix("file://").removeprefix("file:")) / "_delta_log"
        names = [p.name for p in log_dir.iterdir()] if log_dir.is_dir() else []
    versions = [int(m[1]) for n in names if (m := _LOG_ENTRY.match(n))]
    return max(versions) if versions else None


def lake_versions(catalog: CatalogResource, lake: LakeResource,
                  object_store: ObjectStoreResource) -> dict[str, int]:
    """``{"<pipeline id>/<asset>": latest Delta version}`` of every existing lake table."""
    versions: dict[str, int] = {}
    s3 = None
    for p in catalog.pipelines():
        for key, path in lake.tables(p["id"]).items():
            if s3 is None and path.startswith(("s3a://", "s3://")):
                s3 = object_store._s3()
            version = latest_delta_version(path, s3)
            if version is not None:
                versions[f"{p['id']}/{key}"] = version
    return versions


def endpoint_up() -> bool:
    """True when the Spark SQL endpoint accepts a session (a build would fail without it)."""
    from catalog.lakehouse_tables import LakehouseUnavailable, connect

    try:
        connect().close()
    except LakehouseUnavailable:
        return False
    return True


@sensor(job=BUILD_JOB, minimum_interval_seconds=LAKE_CHANGE_INTERVAL,
        default_status=DefaultSensorStatus.RUNNING,
        description="Rebuilds the dbt models when a pipeline's bronze/quarantine/alerts Delta "
                    "tables have new commits since the last build this sensor launched.")
def lakehouse_models_on_lake_change(context: SensorEvaluationContext, catalog: CatalogResource,
                                    lake: LakeResource, object_store: ObjectStoreResource):
    versions = lake_versions(catalog, lake, object_store)
    if not versions:
        return SkipReason("no lake tables yet")
    previous = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(k for k, v in versions.items() if previous.get(k) != v)
    if not changed:
        return SkipReason(f"no new commits in {len(versions)} lake tables")
    if not endpoint_up():  # the cursor stays: the first tick with the endpoint up builds
        return SkipReason(f"{len(changed)} tables changed; the SQL endpoint is down")
    active = context.instance.get_runs(
        RunsFilter(job_name=BUILD_JOB.name, statuses=_ACTIVE), limit=1)
    if active:  # the cursor stays: the next tick sees the same change
        return SkipReason(f"{len(changed)} tables changed; build run {active[0].run_id} "
                          "is still in progress")
    context.update_cursor(json.dumps(versions, sort_keys=True))
    state = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16]
    return RunRequest(run_key=f"lake-{state}", tags={
        "sentinel/kind": "dbt", "sentinel/trigger": "lake_change",
        "sentinel/changed_tables": ",".join(changed)[:200]})


def dbt_resource() -> DbtCliResource:
    """The ``dbt`` resource the assets need (add under ``resources={"dbt": ...}``)."""
    return DbtCliResource(project_dir=lakehouse_project, profiles_dir=str(PROJECT_DIR),
                          dbt_executable=DBT_EXECUTABLE)


DBT_ASSETS = [lakehouse_models]
DBT_SCHEDULES = [lakehouse_models_hourly]
DBT_SENSORS = [lakehouse_tables_sync, lakehouse_models_on_lake_change]
