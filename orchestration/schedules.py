"""When maintenance runs: hourly compaction of every pipeline, lake observations every 10 min,
checks hourly. All of it can also be launched on demand from the UI."""


from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    job,
    schedule,
)

from orchestration.assets import PIPELINES_PARTITIONS, compaction, observe_lake
from orchestration.checks import LAKE_CHECKS

compact_lake = define_asset_job(
    "compact_lake", selection=AssetSelection.assets(compaction),
    partitions_def=PIPELINES_PARTITIONS, tags={"sentinel/kind": "compaction"},
    description="OPTIMIZE + VACUUM one pipeline's Delta tables.")
check_lake = define_asset_job(
    "check_lake", selection=AssetSelection.checks(*LAKE_CHECKS),
    tags={"sentinel/kind": "checks"}, description="Freshness, quarantine rate, alert counts.")


@job(tags={"sentinel/kind": "observe"}, executor_def=in_process_executor,
     description="Record Delta statistics of every pipeline's tables.")
def observe_lake_job():
    observe_lake()


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


SCHEDULES = [hourly_compaction, lake_observations, hourly_checks]
JOBS = [compact_lake, check_lake, observe_lake_job]
