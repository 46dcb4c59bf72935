"""Sensor ``backtest_queue``: one ``rule_backtest`` run for every queued backtest or look-back."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from orchestration.backtests.jobs import (
    BACKTEST_PIPELINE_TAG,
    BACKTEST_TAG,
    backtest_run_config,
    queued,
    rule_backtest,
)
from orchestration.lib.catalog import CatalogResource
from orchestration.lib.tags import KIND_TAG
from orchestration.streams.resources import StreamPolicyResource

SENSOR_INTERVAL_SECONDS = 15


@sensor(job=rule_backtest, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Launch a rule_backtest run for every queued backtest or look-back.")
def backtest_queue(context: SensorEvaluationContext, catalog: CatalogResource,
                   stream_policy: StreamPolicyResource):
    rows = catalog.call(queued, stream_policy.only_names_like)
    if not rows:
        return SkipReason("no queued backtests")
    return [
        RunRequest(run_key=f"backtest-{r['id']}", run_config=backtest_run_config(r["id"]),
                   tags={KIND_TAG: "backtest", BACKTEST_TAG: str(r["id"]),
                         BACKTEST_PIPELINE_TAG: str(r["pipeline_id"]),
                         "sentinel/backtest_kind": r["kind"]})
        for r in rows
    ]


BACKTEST_SENSORS = [backtest_queue]
