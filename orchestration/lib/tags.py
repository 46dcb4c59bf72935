"""Run tags and statuses every integration's jobs and sensors share."""

from dagster import DagsterRunStatus

KIND_TAG = "sentinel/kind"  # stream | backtest | dbt | compaction | checks | observe | superset
ACTIVE_RUN_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED,
                       DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
"""A run in one of these has not finished (queued or running)."""
