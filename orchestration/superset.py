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


import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    ConfigurableResource,
    DagsterRunStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from orchestration.dbt_assets import BUILD_JOB

ROOT = Path(__file__).resolve().parent.parent
PROVISION_SCRIPT = ROOT / "deploy" / "superset" / "provision.py"
MARTS = ("fct_alerts_hourly", "fct_alerts_daily", "fct_rule_effectiveness", "dim_entity_risk",
         "fct_pipeline_health_daily", "fct_quarantine_reasons")
MART_KEYS = [AssetKey(["gold", m]) for m in MARTS]
_ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
           DagsterRunStatus.STARTED]


class SupersetResource(ConfigurableResource):
    """The stack's Superset, provisioned as code through its REST API (``url`` None: none)."""

    url: str | None = None
    python: str = str(ROOT / ".venv-superset" / "bin" / "python")
    timeout_seconds: int = 900

    def reachable(self) -> bool:
        if not self.url:
            return False
        try:
            with urllib.request.urlopen(f"{self.url.rstrip('/')}/health", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def provision(self) -> dict[str, Any]:
        """Run the provisioning; its ids (databases, datasets, charts, dashboards, missing)."""
        if not self.url:
            raise RuntimeError("no Superset configured (SENTINEL_SUPERSET_URL)")
        python = self.python if Path(self.python).exists() else sys.executable
        proc = subprocess.run([python, str(PROVISION_SCRIPT), "--url", self.url, "--json"],
                              cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                              timeout=self.timeout_seconds)
        if proc.returncode != 0:
            raise RuntimeError(f"provision.py failed ({proc.returncode}): "
                               f"{proc.stderr[-2000:] or proc.stdout[-2000:]}")
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


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
    tags={"sentinel/kind": "superset"},
    description="Provisions Superset again (after the marts changed).")


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
    if context.instance.get_runs(RunsFilter(job_name=BUILD_JOB.name, statuses=_ACTIVE), limit=1):
        return SkipReason("a dbt build is still running")
    if not superset.reachable():  # the cursor stays: provisioned when Superset answers
        return SkipReason(f"Superset not answering on {superset.url}")
    context.update_cursor(str(latest))
    return RunRequest(run_key=f"marts-{latest}", tags={"sentinel/trigger": "marts_built"})


SUPERSET_ASSETS = [superset_dashboards]
SUPERSET_JOBS = [PROVISION_JOB]
SUPERSET_SENSORS = [superset_after_marts]
