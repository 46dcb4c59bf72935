"""The Sentinel code location: everything Dagster loads (``workspace.yaml`` points here).

Tunables come from the environment (defaults in brackets): ``SENTINEL_STREAM_MAX_ATTEMPTS``
[5], ``SENTINEL_STREAM_BACKOFF_SECONDS`` [30], ``SENTINEL_STREAM_BACKOFF_MAX_SECONDS`` [600],
``SENTINEL_STREAM_HEARTBEAT_SECONDS`` [60], ``SENTINEL_COMPACTION_SPARK_MASTER`` [local[2]],
``SENTINEL_WATCH_PIPELINES_LIKE`` [all pipelines: a SQL LIKE pattern on names].
"""


import os

from dagster import Definitions

from orchestration.assets import LAKE_SPECS, compaction
from orchestration.checks import LAKE_CHECKS
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


def _env(name: str, default: float) -> float:
    return float(os.environ.get(f"SENTINEL_{name}", default))


def build_definitions() -> Definitions:
    """One Definitions object: streams, watcher, lake assets, compaction, checks, schedules."""
    return Definitions(
        assets=[*LAKE_SPECS, compaction],
        asset_checks=LAKE_CHECKS,
        jobs=[stream_pipeline, *JOBS],
        sensors=[pipeline_watcher],
        schedules=SCHEDULES,
        resources={
            "catalog": CatalogResource(),
            "stream_policy": StreamPolicyResource(
                max_attempts=int(_env("STREAM_MAX_ATTEMPTS", 5)),
                backoff_base_seconds=_env("STREAM_BACKOFF_SECONDS", 30),
                backoff_max_seconds=_env("STREAM_BACKOFF_MAX_SECONDS", 600),
                heartbeat_seconds=_env("STREAM_HEARTBEAT_SECONDS", 60),
                only_names_like=os.environ.get("SENTINEL_WATCH_PIPELINES_LIKE") or None,
            ),
            "lake": LakeResource(
                spark_master=os.environ.get("SENTINEL_COMPACTION_SPARK_MASTER", "local[2]")),
            "object_store": ObjectStoreResource(),
            "redis": RedisResource(),
        },
    )


defs = build_definitions()
