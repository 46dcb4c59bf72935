"""The dbt project ``lakehouse_models`` as Dagster assets (issue 5, DESIGN §7-§8).

Every dbt model is an asset (group ``lakehouse_models``) and every dbt test an asset check.
The dbt sources map onto the lake's observed assets (``bronze_events``, ``quarantine``,
``silver_alerts`` of ``orchestration.assets``; see ``meta.dagster.asset_key`` in
``lakehouse_models/models/staging/_sources.yml``), so the models sit downstream of them.

Before each build the union views are synced (``catalog.lakehouse_tables.register_all``,
cheap when nothing changed). ``lakehouse_tables_sync`` does the same every minute so SQL
clients see new pipelines without waiting for a build; ``lakehouse_models_hourly`` rebuilds
the models (full refresh; each model is a small aggregate) at minute 25 of every hour.

The manifest is built at load time with ``dbt parse`` when it is missing or older than the
project's files (``dagster dev`` re-parses through ``prepare_if_dev``).
"""


import shutil
import sys
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    DefaultScheduleStatus,
    DefaultSensorStatus,
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


def dbt_resource() -> DbtCliResource:
    """The ``dbt`` resource the assets need (add under ``resources={"dbt": ...}``)."""
    return DbtCliResource(project_dir=lakehouse_project, profiles_dir=str(PROJECT_DIR),
                          dbt_executable=DBT_EXECUTABLE)


DBT_ASSETS = [lakehouse_models]
DBT_SCHEDULES = [lakehouse_models_hourly]
DBT_SENSORS = [lakehouse_tables_sync]
