"""The dbt models as two ``@dbt_assets`` definitions and the job that builds them.

- ``lakehouse_models_daily``: the day-grained facts, partitioned by UTC day
  (``orchestration.dbt.partitions``);
- ``lakehouse_models``: the staging views and ``dim_entity_risk`` (a table, rebuilt in full).

Before each build the union views are synced (``orchestration.lake.registration.register_all``,
cheap when nothing changed).
"""

import json

from dagster import AssetExecutionContext, AssetSelection, BackfillPolicy, define_asset_job
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.dbt.partitions import DAILY_PARTITIONS, DAILY_SELECT, partition_vars
from orchestration.dbt.project import TRANSLATOR, ensure_manifest, lakehouse_project
from orchestration.dbt.retry import dbt_build
from orchestration.lake.registration import register_all


def _sync_views(context: AssetExecutionContext) -> None:
    report = register_all()
    context.log.info("lakehouse tables: %s", report.summary())


@dbt_assets(
    manifest=ensure_manifest(),
    project=lakehouse_project,
    select=DAILY_SELECT,
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
    dagster_dbt_translator=TRANSLATOR,
    name="lakehouse_models_daily",
    op_tags={"sentinel/kind": "dbt"},
)
def lakehouse_models_daily(context: AssetExecutionContext, dbt: DbtCliResource):
    """Sync the union views, then ``dbt build`` the day-grained facts for the run's days."""
    _sync_views(context)
    window = context.partition_time_window
    dbt_vars = partition_vars(window.start, window.end)
    context.log.info("rebuilding days %s", dbt_vars)
    yield from dbt_build(context, dbt, ["build", "--vars", json.dumps(dbt_vars)])


@dbt_assets(
    manifest=ensure_manifest(),
    project=lakehouse_project,
    exclude=DAILY_SELECT,
    backfill_policy=BackfillPolicy.single_run(),
    dagster_dbt_translator=TRANSLATOR,
    name="lakehouse_models",
    op_tags={"sentinel/kind": "dbt"},
)
def lakehouse_models(context: AssetExecutionContext, dbt: DbtCliResource):
    """Sync the union views, then ``dbt build`` the staging views and the other marts."""
    _sync_views(context)
    yield from dbt_build(context, dbt, ["build"])


BUILD_JOB = define_asset_job(
    "build_lakehouse_models",
    selection=AssetSelection.assets(lakehouse_models, lakehouse_models_daily),
    tags={"sentinel/kind": "dbt"},
    description="Rebuilds every dbt model: the day-grained facts for the run's day partitions, "
                "the staging views and dim_entity_risk in full.",
)


DBT_ASSETS = [lakehouse_models, lakehouse_models_daily]
