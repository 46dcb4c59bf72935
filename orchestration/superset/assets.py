"""Superset follows the marts: provisioned again, by itself, after the dbt models are built.

The asset ``superset_dashboards`` (group ``dashboards``) sits downstream of every gold mart: it
runs ``deploy/superset/provision.py`` (idempotent, the same code as ``make superset-provision``),
which turns each mart's placeholder dataset into the physical table once dbt has built it and
refreshes the columns of the others, so the Fraud Overview charts fill without a manual step and
a new mart or pipeline never needs one. The sensor ``superset_after_marts`` launches the job
``provision_superset`` when a mart has a materialization newer than the last one it saw (a build
whose data tests failed still built its models) and no dbt build is still running.

The Superset is ``SENTINEL_SUPERSET_URL`` (``make up`` sets it when it starts Superset); unset,
the sensor skips and nothing touches Superset (tests, stacks without dashboards).
"""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from orchestration.lib.tags import KIND_TAG
from orchestration.superset.resources import SupersetResource

MARTS = ("fct_alerts_hourly", "fct_alerts_daily", "fct_rule_effectiveness", "dim_entity_risk",
         "fct_pipeline_health_daily", "fct_quarantine_reasons")
MART_KEYS = [AssetKey(["gold", m]) for m in MARTS]


@asset(deps=MART_KEYS, group_name="dashboards", kinds={"superset"},
       description="Superset's databases, datasets, charts and dashboards, provisioned as code "
                   "over the gold marts (placeholders for marts not built yet).")
def superset_dashboards(context: AssetExecutionContext,
                        superset: SupersetResource) -> MaterializeResult:
    ids = superset.provision()
    base = (superset.url or "").rstrip("/")
    context.log.info("provisioned %d charts; placeholders: %s", len(ids["charts"]),
                     ", ".join(ids["missing"]) or "none")
    return MaterializeResult(metadata={
        "charts": len(ids["charts"]),
        "placeholders": MetadataValue.json(ids["missing"]),
        **{f"dashboard {title}": MetadataValue.url(f"{base}/superset/dashboard/{board}/")
           for title, board in ids["dashboards"].items()},
    })


PROVISION_JOB = define_asset_job(
    "provision_superset", selection=AssetSelection.assets(superset_dashboards),
    tags={KIND_TAG: "superset"},
    description="Provisions Superset again (after the marts changed).")


SUPERSET_ASSETS = [superset_dashboards]
SUPERSET_JOBS = [PROVISION_JOB]
