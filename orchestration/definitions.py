"""The Sentinel code location: everything Dagster loads (``workspace.yaml`` points here).

One ``Definitions`` assembled from the integrations (docs/architecture.md, Orchestration):
``streams`` (the watcher and the stream runs), ``lake`` (observations, compaction, checks),
``dbt`` (the marts), ``backtests`` and ``superset``. Tunables are settings
(``catalog/settings.py``): ``SENTINEL_STREAM_MAX_ATTEMPTS``, ``SENTINEL_STREAM_BACKOFF_SECONDS``,
``SENTINEL_STREAM_BACKOFF_MAX_SECONDS``, ``SENTINEL_STREAM_HEARTBEAT_SECONDS``,
``SENTINEL_COMPACTION_SPARK_MASTER``, ``SENTINEL_WATCH_PIPELINES_LIKE`` (a SQL LIKE pattern on
names; default: all pipelines).
"""

from dagster import Definitions

from catalog.settings import get_settings
from orchestration.backtests.jobs import BACKTEST_JOBS
from orchestration.backtests.sensors import BACKTEST_SENSORS
from orchestration.dbt.assets import DBT_ASSETS
from orchestration.dbt.project import dbt_resource
from orchestration.dbt.schedules import DBT_SCHEDULES
from orchestration.dbt.sensors import DBT_SENSORS
from orchestration.lake.assets import LAKE_SPECS, compaction
from orchestration.lake.checks import LAKE_CHECKS
from orchestration.lake.jobs import LAKE_JOBS
from orchestration.lake.resources import LakeResource, ObjectStoreResource
from orchestration.lake.schedules import LAKE_SCHEDULES
from orchestration.lib.catalog import CatalogResource
from orchestration.streams.jobs import stream_pipeline
from orchestration.streams.resources import RedisResource, StreamPolicyResource
from orchestration.streams.sensors import pipeline_watcher
from orchestration.superset.assets import SUPERSET_ASSETS, SUPERSET_JOBS
from orchestration.superset.resources import SupersetResource
from orchestration.superset.sensors import SUPERSET_SENSORS


def build_definitions() -> Definitions:
    """One Definitions object: streams, watcher, lake assets, compaction, checks, dbt models."""
    settings = get_settings()
    return Definitions(
        assets=[*LAKE_SPECS, compaction, *DBT_ASSETS, *SUPERSET_ASSETS],
        asset_checks=LAKE_CHECKS,
        jobs=[stream_pipeline, *LAKE_JOBS, *BACKTEST_JOBS, *SUPERSET_JOBS],
        sensors=[pipeline_watcher, *DBT_SENSORS, *BACKTEST_SENSORS, *SUPERSET_SENSORS],
        schedules=[*LAKE_SCHEDULES, *DBT_SCHEDULES],
        resources={
            "catalog": CatalogResource(),
            "stream_policy": StreamPolicyResource(
                max_attempts=settings.stream_max_attempts,
                backoff_base_seconds=settings.stream_backoff_seconds,
                backoff_max_seconds=settings.stream_backoff_max_seconds,
                heartbeat_seconds=settings.stream_heartbeat_seconds,
                stop_grace_seconds=settings.stream_stop_grace_seconds,
                only_names_like=settings.watch_pipelines_like,
            ),
            "lake": LakeResource(spark_master=settings.compaction_spark_master),
            "dbt": dbt_resource(),
            "object_store": ObjectStoreResource(),
            "redis": RedisResource(),
            "superset": SupersetResource(url=settings.superset_url),
        },
    )


defs = build_definitions()
