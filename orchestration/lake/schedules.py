"""When the lake's maintenance runs: hourly compaction of every pipeline, lake observations
every 10 min, checks hourly. All of it can also be launched on demand from the UI."""

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from orchestration.lake.assets import PIPELINES_PARTITIONS
from orchestration.lake.jobs import check_lake, compact_lake, observe_lake_job


@schedule(job=compact_lake, cron_schedule="15 * * * *",
          default_status=DefaultScheduleStatus.RUNNING,
          description="Every hour: compact each pipeline (runs queue one at a time).")
def hourly_compaction(context: ScheduleEvaluationContext):
    keys = context.instance.get_dynamic_partitions(PIPELINES_PARTITIONS.name)
    if not keys:
        return SkipReason("no pipelines yet")
    stamp = context.scheduled_execution_time.isoformat()
    return [RunRequest(run_key=f"{k}:{stamp}", partition_key=k) for k in keys]


@schedule(job=observe_lake_job, cron_schedule="*/10 * * * *",
          default_status=DefaultScheduleStatus.RUNNING)
def lake_observations(context: ScheduleEvaluationContext):
    return RunRequest(run_key=context.scheduled_execution_time.isoformat())


@schedule(job=check_lake, cron_schedule="45 * * * *",
          default_status=DefaultScheduleStatus.RUNNING)
def hourly_checks(context: ScheduleEvaluationContext):
    return RunRequest(run_key=context.scheduled_execution_time.isoformat())


LAKE_SCHEDULES = [hourly_compaction, lake_observations, hourly_checks]
