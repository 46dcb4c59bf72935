"""Alert queries: filters on pipeline, severity, rule and time, keyset (cursor) pagination."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from catalog.tables import fraud_alerts


class BadCursor(ValueError):
    """The cursor was not produced by this API."""


def encode_cursor(alert_timestamp: datetime, alert_pk: int) -> str:
    raw = json.dumps([alert_timestamp.isoformat(), alert_pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (alert time, alert pk) a cursor holds; `BadCursor` for anything this API did not
    produce, including numbers out of range such as ``1e400``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        ts, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when, key = datetime.fromisoformat(ts), int(pk)
    except (binascii.Error, ValueError, TypeError, UnicodeError, OverflowError) as exc:
        raise BadCursor("cursor is not valid: use the X-Next-Cursor of a previous page") from exc
    if not 0 < key < 2**63:
        raise BadCursor("cursor is not valid: use the X-Next-Cursor of a previous page")
    return when, key


def list_alerts(
    conn: Connection,
    *,
    limit: int,
    pipeline_id: int | None = None,
    severity: str | None = None,
    rule_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; returns the page and the cursor of the next page (or None)."""
    query = select(fraud_alerts)
    if pipeline_id is not None:
        query = query.where(fraud_alerts.c.pipeline_id == pipeline_id)
    if severity is not None:
        query = query.where(fraud_alerts.c.severity == severity)
    if rule_id is not None:
        query = query.where(fraud_alerts.c.rule_id == rule_id)
    if since is not None:
        query = query.where(fraud_alerts.c.alert_timestamp >= since)
    if until is not None:
        query = query.where(fraud_alerts.c.alert_timestamp < until)
    if cursor is not None:
        ts, pk = decode_cursor(cursor)
        query = query.where(
            or_(
                fraud_alerts.c.alert_timestamp < ts,
                and_(fraud_alerts.c.alert_timestamp == ts, fraud_alerts.c.id < pk),
            )
        )
    query = query.order_by(fraud_alerts.c.alert_timestamp.desc(), fraud_alerts.c.id.desc())
    rows = [dict(r._mapping) for r in conn.execute(query.limit(limit + 1))]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last["alert_timestamp"], last["id"])
    return rows, next_cursor


def get_alert(conn: Connection, *, alert_ref: str) -> dict[str, Any] | None:
    """An alert by its numeric id or by its deterministic `alert_id`."""
    if alert_ref.isascii() and alert_ref.isdigit() and len(alert_ref) <= 18:
        query = select(fraud_alerts).where(fraud_alerts.c.id == int(alert_ref))
    else:
        query = select(fraud_alerts).where(fraud_alerts.c.alert_id == alert_ref)
    row = conn.execute(query).first()
    return dict(row._mapping) if row is not None else None
