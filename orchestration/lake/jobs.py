"""The lake's jobs: compaction of one pipeline, the checks, and the Delta observations."""

from dagster import AssetSelection, define_asset_job, in_process_executor, job

from orchestration.lake.assets import PIPELINES_PARTITIONS, compaction, observe_lake
from orchestration.lake.checks import LAKE_CHECKS
from orchestration.lib.tags import KIND_TAG

compact_lake = define_asset_job(
    "compact_lake", selection=AssetSelection.assets(compaction),
    partitions_def=PIPELINES_PARTITIONS, tags={KIND_TAG: "compaction"},
    description="OPTIMIZE + VACUUM one pipeline's Delta tables.")
check_lake = define_asset_job(
    "check_lake", selection=AssetSelection.checks(*LAKE_CHECKS),
    tags={KIND_TAG: "checks"}, description="Freshness, quarantine rate, alert counts.")


@job(tags={KIND_TAG: "observe"}, executor_def=in_process_executor,
     description="Record Delta statistics of every pipeline's tables.")
def observe_lake_job():
    observe_lake()


LAKE_JOBS = [compact_lake, check_lake, observe_lake_job]
