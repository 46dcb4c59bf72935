"""The Sentinel code location: everything Dagster loads (``workspace.yaml`` points here).

Tunables are settings (``catalog/settings.py``): ``SENTINEL_STREAM_MAX_ATTEMPTS``,
``SENTINEL_STREAM_BACKOFF_SECONDS``, ``SENTINEL_STREAM_BACKOFF_MAX_SECONDS``,
``SENTINEL_STREAM_HEARTBEAT_SECONDS``, ``SENTINEL_COMPACTION_SPARK_MASTER``,
``SENTINEL_WATCH_PIPELINES_LIKE`` (a SQL LIKE pattern on names; default: all pipelines).
"""

from dagster import Definitions

from catalog.settings import get_settings
from orchestration.assets import LAKE_SPECS, compaction
from orchestration.backtests import BACKTEST_JOBS, BACKTEST_SENSORS
from orchestration.checks import LAKE_CHECKS
from orchestration.dbt_assets import DBT_ASSETS, DBT_SCHEDULES, DBT_SENSORS, dbt_resource
from orchestration.jobs import stream_pipeline
from orchestration.resources import (
    CatalogResource,
    LakeResource,
    ObjectStoreResource,
    RedisResource,
    StreamPolicyResource,
)
from orchestration.schedules import JOBS, SCHEDULES
from orchestration.sensors import pipeline_watcher
from orchestration.superset import (
    SUPERSET_ASSETS,
    SUPERSET_JOBS,
    SUPERSET_SENSORS,
    SupersetResource,
)


def build_definitions() -> Definitions:
    """One Definitions object: streams, watcher, lake assets, compaction, checks, dbt models."""
    settings = get_settings()
    return Definitions(
        assets=[*LAKE_SPECS, compaction, *DBT_ASSETS, *SUPERSET_ASSETS],
        asset_checks=LAKE_CHECKS,
        jobs=[stream_pipeline, *JOBS, *BACKTEST_JOBS, *SUPERSET_JOBS],
        sensors=[pipeline_watcher, *DBT_SENSORS, *BACKTEST_SENSORS, *SUPERSET_SENSORS],
        schedules=[*SCHEDULES, *DBT_SCHEDULES],
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
