"""The lake as Dagster assets, one partition per pipeline.

``bronze_events``, ``quarantine`` and ``silver_alerts`` are written by the streams, so they are
external assets here: Dagster observes them (Delta version, rows, files, bytes) rather than
materializing them. ``compaction`` is Dagster's own work on them: OPTIMIZE + VACUUM per
pipeline, on a schedule or on demand.
"""


from dagster import (
    AssetExecutionContext,
    AssetObservation,
    AssetSpec,
    Config,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    asset,
    op,
)

from orchestration.lake.compaction import compact_table
from orchestration.lake.delta_stats import DeltaLogTruncated
from orchestration.lake.resources import LakeResource, ObjectStoreResource
from orchestration.lib.catalog import CatalogResource
from orchestration.lib.tags import KIND_TAG

PIPELINES_PARTITIONS = DynamicPartitionsDefinition(name="pipelines")
GROUP = "lakehouse"

bronze_events = AssetSpec(
    "bronze_events", partitions_def=PIPELINES_PARTITIONS, group_name=GROUP, kinds={"delta"},
    description="Every valid event of a pipeline, typed by its schema (Delta, by event_date). "
                "Written by the pipeline's stream.")
quarantine = AssetSpec(
    "quarantine", partitions_def=PIPELINES_PARTITIONS, group_name=GROUP, kinds={"delta"},
    description="Every record that failed parsing or validation, with the reason.")
silver_alerts = AssetSpec(
    "silver_alerts", partitions_def=PIPELINES_PARTITIONS, group_name=GROUP, kinds={"delta"},
    deps=[bronze_events],
    description="Every rule match (alert) of a pipeline; mirrored in Postgres and Redis.")
LAKE_SPECS = [bronze_events, quarantine, silver_alerts]


def observe_pipeline(store: ObjectStoreResource, lake: LakeResource, pipeline_id: int):
    """One AssetObservation per table of the pipeline, with its Delta statistics."""
    for key, path in lake.tables(pipeline_id).items():
        try:
            meta: dict = store.stats(path).metadata()
        except DeltaLogTruncated as exc:
            meta = {"note": f"log truncated, stats need the checkpoint: {exc}"}
        meta["path"] = MetadataValue.path(path)
        yield AssetObservation(asset_key=key, partition=str(pipeline_id), metadata=meta)


@op(description="Observe every pipeline's Delta tables (version, rows, files, size).")
def observe_lake(context: OpExecutionContext, catalog: CatalogResource,
                 object_store: ObjectStoreResource, lake: LakeResource) -> None:
    for p in catalog.pipelines():
        for event in observe_pipeline(object_store, lake, p["id"]):
            context.log_event(event)


class CompactionConfig(Config):
    """VACUUM keeps files younger than the retention (Delta's default: 7 days)."""

    retention_hours: float = 168.0
    lease_timeout_seconds: float = 120.0


@asset(
    partitions_def=PIPELINES_PARTITIONS,
    group_name=GROUP,
    deps=LAKE_SPECS,
    kinds={"spark", "delta"},
    tags={KIND_TAG: "compaction"},
    description="OPTIMIZE (Z-order by the pipeline's key field) and VACUUM its Delta tables, "
                "under each table's writer lease.",
)
def compaction(context: AssetExecutionContext, config: CompactionConfig,
               catalog: CatalogResource, lake: LakeResource) -> MaterializeResult:
    pipeline_id = int(context.partition_key)
    row = next((p for p in catalog.pipelines() if p["id"] == pipeline_id), None)
    key_field = row["key_field"] if row else None
    extra = {}
    if config.retention_hours < 168:
        extra["spark.databricks.delta.retentionDurationCheck.enabled"] = "false"
    spark = lake.session(f"sentinel-compaction-{pipeline_id}", extra)
    metadata: dict = {}
    for name, path in lake.tables(pipeline_id).items():
        result = compact_table(
            spark, path, zorder_by=key_field if name == "bronze_events" else None,
            retention_hours=config.retention_hours,
            lease_timeout=config.lease_timeout_seconds, owner=f"compaction run {context.run_id}")
        context.log.info("%s: %s %s", name, result.status, result.message)
        metadata[f"{name}_files_before"] = result.files_before
        metadata[f"{name}_files_after"] = result.files_after
        metadata[f"{name}_optimize_removed_added"] = (
            f"{result.files_removed_by_optimize} -> {result.files_added_by_optimize}")
        metadata[f"{name}_status"] = f"{result.status}: {result.message}"
    metadata["files_before"] = sum(v for k, v in metadata.items() if k.endswith("_files_before"))
    metadata["files_after"] = sum(v for k, v in metadata.items() if k.endswith("_files_after"))
    return MaterializeResult(metadata=metadata)
