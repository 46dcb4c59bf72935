"""Detection rules: create under a pipeline, read, edit (versioned), toggle, delete, validate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from sqlalchemy import Connection

from api.crud import backtests as backtest_crud
from api.crud import pipelines as pipeline_crud
from api.crud import rules as crud
from api.deps import Analyst, EngineDep, SettingsDep, Viewer
from api.errors import not_found, unprocessable
from api.models.rules import (
    LookbackQueued,
    RuleCreate,
    RuleCreated,
    RulePublic,
    RuleStatusUpdate,
    RuleUpdate,
    RuleValidateRequest,
    RuleValidateResult,
    RuleVersionPublic,
)
from api.params import PipelineId, RuleId
from catalog.rules.field_types import FieldSpec
from catalog.rules.validator import RuleValidationError, ValidatedRule, validate_rule
from catalog.settings import Settings

router = APIRouter(tags=["rules"])


def pipeline_fields(conn: Connection, pipeline_id: int) -> list[FieldSpec]:
    row = pipeline_crud.get_pipeline_row(conn, pipeline_id=pipeline_id)
    if row is None:
        raise not_found("pipeline", pipeline_id)
    return [FieldSpec.model_validate(f) for f in row["schema"]]


def validated(expression: str, fields: list[FieldSpec], settings: Settings) -> ValidatedRule:
    try:
        return validate_rule(
            expression,
            fields,
            max_length=settings.rule_max_length,
            max_depth=settings.rule_max_depth,
            max_window_seconds=settings.velocity_max_window_seconds,
        )
    except RuleValidationError as exc:
        extra = {k: v for k, v in exc.to_dict().items() if k != "message"}
        raise unprocessable(["body", "rule_expression"], exc.message, **extra) from exc


@router.post(
    "/api/pipelines/{pipeline_id}/rules",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleCreated,
    response_model_exclude_none=True,
)
def create_rule(
    pipeline_id: PipelineId,
    body: RuleCreate,
    engine: EngineDep,
    settings: SettingsDep,
    who: Analyst,
) -> RuleCreated:
    """Add a rule; it is validated here and takes effect on the stream's next micro-batch.

    With ``lookback_days`` a look-back job is queued too: it alerts on the archived events of
    the last N days (same alert ids and sinks as the stream, outside the live stream).
    """
    if body.lookback_days is not None and not body.is_active:
        raise unprocessable(["body", "lookback_days"], "a look-back needs an active rule")
    with engine.begin() as conn:
        fields = pipeline_fields(conn, pipeline_id)
        rule = validated(body.rule_expression, fields, settings)
        rule_id = crud.create_rule(
            conn,
            actor=who.name,
            pipeline_id=pipeline_id,
            rule_expression=rule.normalized,
            severity=body.severity,
            description=body.description,
            score=body.score,
            is_active=body.is_active,
        )
        lookback = None
        if body.lookback_days is not None:
            job_id = backtest_crud.create_lookback(
                conn, pipeline_id=pipeline_id, rule_id=rule_id, rule_version=1,
                rule_expression=rule.normalized, days=body.lookback_days, requested_by=who.name)
            url = f"/api/pipelines/{pipeline_id}/rules/backtests/{job_id}"
            lookback = LookbackQueued(id=job_id, poll_url=url)
    return RuleCreated(id=rule_id, lookback=lookback)


@router.get("/api/pipelines/{pipeline_id}/rules", response_model=list[RulePublic])
def list_rules(pipeline_id: PipelineId, engine: EngineDep, who: Viewer) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        pipeline_fields(conn, pipeline_id)
        return crud.list_rules(conn, pipeline_id=pipeline_id)


@router.post("/api/rules/validate", response_model=RuleValidateResult)
def validate(
    body: RuleValidateRequest, engine: EngineDep, settings: SettingsDep, who: Viewer
) -> RuleValidateResult:
    """Dry run: is this expression a valid rule for the pipeline? Nothing is stored."""
    with engine.connect() as conn:
        fields = pipeline_fields(conn, body.pipeline_id)
    try:
        rule = validate_rule(
            body.rule_expression,
            fields,
            max_length=settings.rule_max_length,
            max_depth=settings.rule_max_depth,
            max_window_seconds=settings.velocity_max_window_seconds,
        )
    except RuleValidationError as exc:
        return RuleValidateResult(valid=False, error=exc.to_dict())
    return RuleValidateResult(valid=True, normalized=rule.normalized, columns=sorted(rule.columns))


@router.get("/api/rules/{rule_id}", response_model=RulePublic)
def get_rule(rule_id: RuleId, engine: EngineDep, who: Viewer) -> dict[str, Any]:
    with engine.connect() as conn:
        row = crud.get_rule(conn, rule_id=rule_id)
    if row is None:
        raise not_found("rule", rule_id)
    return row


@router.get("/api/rules/{rule_id}/versions", response_model=list[RuleVersionPublic])
def get_rule_versions(rule_id: RuleId, engine: EngineDep, who: Viewer) -> list[dict[str, Any]]:
    """Every version of the rule, oldest first."""
    with engine.connect() as conn:
        versions = crud.list_versions(conn, rule_id=rule_id)
    if not versions:
        raise not_found("rule", rule_id)
    return versions


@router.put("/api/rules/{rule_id}", response_model=RulePublic)
def update_rule(
    rule_id: RuleId, body: RuleUpdate, engine: EngineDep, settings: SettingsDep, who: Analyst
) -> dict[str, Any]:
    """Edit a rule (any subset of its fields); the edit becomes a new version."""
    changes = body.model_dump(exclude_unset=True)
    with engine.begin() as conn:
        current = crud.get_rule(conn, rule_id=rule_id)
        if current is None:
            raise not_found("rule", rule_id)
        if "rule_expression" in changes:
            fields = pipeline_fields(conn, current["pipeline_id"])
            changes["rule_expression"] = validated(
                changes["rule_expression"], fields, settings
            ).normalized
        row = crud.update_rule(
            conn, actor=who.name, rule_id=rule_id, changes=changes, action="rule.update"
        )
    if row is None:
        raise not_found("rule", rule_id)
    return row


@router.patch("/api/rules/{rule_id}/status", response_model=RulePublic)
def set_rule_status(
    rule_id: RuleId, body: RuleStatusUpdate, engine: EngineDep, who: Analyst
) -> dict[str, Any]:
    """Enable or disable a rule (takes effect on the next micro-batch); setting the state it
    already has changes nothing, not even the version."""
    with engine.begin() as conn:
        row = crud.update_rule(
            conn,
            actor=who.name,
            rule_id=rule_id,
            changes={"is_active": body.is_active},
            action="rule.status",
        )
    if row is None:
        raise not_found("rule", rule_id)
    return row


@router.delete("/api/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(rule_id: RuleId, engine: EngineDep, who: Analyst) -> Response:
    """Delete a rule; its versions stay in the history and the audit log."""
    with engine.begin() as conn:
        if not crud.delete_rule(conn, actor=who.name, rule_id=rule_id):
            raise not_found("rule", rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
