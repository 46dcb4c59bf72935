"""The marts' hourly refresh: today's day partition (and yesterday's in the first hour of a day)."""

from datetime import UTC, datetime

from dagster import DefaultScheduleStatus, ScheduleEvaluationContext, schedule

from orchestration.dbt.assets import BUILD_JOB
from orchestration.dbt.partitions import recent_days, run_request_for_days


@schedule(job=BUILD_JOB, cron_schedule="25 * * * *", name="lakehouse_models_hourly",
          execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
          description="Rebuilds today's day partition of the marts (and yesterday's in the "
                      "first hour of a day) with the staging views and dim_entity_risk.")
def lakehouse_models_hourly(context: ScheduleEvaluationContext):
    now = context.scheduled_execution_time or datetime.now(UTC)
    days = recent_days(now)
    return run_request_for_days(min(days), max(days), run_key=None,
                                tags={"sentinel/kind": "dbt", "sentinel/trigger": "schedule"})


DBT_SCHEDULES = [lakehouse_models_hourly]
