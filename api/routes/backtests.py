"""Rule backtests: a candidate expression over a pipeline's archived events, run as a job.

The API only validates and queues (202 + a poll URL); ``streaming.backtest`` (the Dagster job
``rule_backtest`` or ``python -m streaming.backtest``) runs it on Spark. The API never imports
Spark.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from api.crud import backtests as crud
from api.deps import Analyst, EngineDep, SettingsDep, Viewer
from api.errors import not_found
from api.models.backtests import BacktestCreate, BacktestPublic, BacktestQueued
from api.params import INT32_MAX, PipelineId
from api.routes.rules import pipeline_fields, validated
from catalog.settings import Settings

router = APIRouter(tags=["backtests"])

BacktestId = Annotated[int, Path(ge=1, le=INT32_MAX, description="backtest id")]


# Result keys that describe the server (storage paths), never shown to API callers.
PRIVATE_RESULT_KEYS = frozenset({"events_table"})


def public(row: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A job as callers may see it: no server paths in its results or its error text."""
    row = dict(row)
    if isinstance(row.get("results"), dict):
        row["results"] = {
            k: v for k, v in row["results"].items() if k not in PRIVATE_RESULT_KEYS
        }
    if isinstance(row.get("error"), str):
        for root, label in ((settings.warehouse_root, "<warehouse>"), (str(settings.home),
                                                                        "<home>")):
            row["error"] = row["error"].replace(root, label)
    return row


def poll_url(pipeline_id: int, backtest_id: int) -> str:
    return f"/api/pipelines/{pipeline_id}/rules/backtests/{backtest_id}"


@router.post(
    "/api/pipelines/{pipeline_id}/rules/backtest",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BacktestQueued,
)
def create_backtest(
    pipeline_id: PipelineId,
    body: BacktestCreate,
    response: Response,
    engine: EngineDep,
    settings: SettingsDep,
    who: Analyst,
) -> BacktestQueued:
    """Queue a backtest of an expression (validated like any rule) over ``[since, until)``.

    Results (events scanned, hits, hit rate, hits per day, a sample, overlap with the active
    rules' alerts, the Delta version read) appear at the poll URL; no alert is ever written.
    """
    with engine.begin() as conn:
        fields = pipeline_fields(conn, pipeline_id)
        rule = validated(body.rule_expression, fields, settings)
        job_id = crud.create_backtest(
            conn, pipeline_id=pipeline_id, rule_expression=rule.normalized, since=body.since,
            until=body.until, sample_size=body.sample_size, requested_by=who.name)
    url = poll_url(pipeline_id, job_id)
    response.headers["Location"] = url
    return BacktestQueued(id=job_id, poll_url=url)


@router.get("/api/pipelines/{pipeline_id}/rules/backtests", response_model=list[BacktestPublic])
def list_backtests(
    pipeline_id: PipelineId,
    engine: EngineDep,
    settings: SettingsDep,
    who: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """The pipeline's backtests and look-backs, newest first."""
    with engine.connect() as conn:
        pipeline_fields(conn, pipeline_id)
        rows = crud.list_backtests(conn, pipeline_id=pipeline_id, limit=limit)
    return [public(row, settings) for row in rows]


@router.get(
    "/api/pipelines/{pipeline_id}/rules/backtests/{backtest_id}", response_model=BacktestPublic
)
def get_backtest(
    pipeline_id: PipelineId,
    backtest_id: BacktestId,
    engine: EngineDep,
    settings: SettingsDep,
    who: Viewer,
) -> dict[str, Any]:
    """One job: its status, and its results once it succeeded (kept)."""
    with engine.connect() as conn:
        row = crud.get_backtest(conn, pipeline_id=pipeline_id, backtest_id=backtest_id)
    if row is None:
        raise not_found("backtest", backtest_id)
    return public(row, settings)
