"""`/api/alerts`: recent alerts with filters and cursor pagination; one alert by id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from api.crud import alerts as crud
from api.deps import EngineDep, Viewer
from api.errors import not_found, unprocessable
from api.models.alerts import AlertPublic
from api.models.rules import Severity
from api.params import INT32_MAX

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


@router.get("", response_model=list[AlertPublic])
def list_alerts(
    response: Response,
    engine: EngineDep,
    who: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    pipeline_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    severity: Severity | None = None,
    rule_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    since: Annotated[datetime | None, Query(description="alerts at or after (ISO-8601)")] = None,
    until: Annotated[datetime | None, Query(description="alerts before (ISO-8601)")] = None,
    cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_=-]*$")] = None,
) -> list[dict[str, Any]]:
    """Newest alerts first. The next page's cursor is in the `X-Next-Cursor` header."""
    if since is not None and until is not None and since >= until:
        raise unprocessable(["query", "since"], "since must be earlier than until")
    with engine.connect() as conn:
        try:
            rows, next_cursor = crud.list_alerts(
                conn,
                limit=limit,
                pipeline_id=pipeline_id,
                severity=severity,
                rule_id=rule_id,
                since=since,
                until=until,
                cursor=cursor,
            )
        except crud.BadCursor as exc:
            raise unprocessable(["query", "cursor"], str(exc)) from exc
    if next_cursor is not None:
        response.headers["X-Next-Cursor"] = next_cursor
    return rows


@router.get("/{alert_ref}", response_model=AlertPublic)
def get_alert(
    alert_ref: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$",
                                   description="numeric id or alert id")],
    engine: EngineDep,
    who: Viewer,
) -> dict[str, Any]:
    """One alert, by numeric id or by its deterministic alert id."""
    with engine.connect() as conn:
        row = crud.get_alert(conn, alert_ref=alert_ref)
    if row is None:
        raise not_found("alert", alert_ref)
    return row
