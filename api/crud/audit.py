"""The audit trail: who changed what, with the row before and after."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert, select

from catalog.tables import audit_log


def jsonable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row as plain JSON (datetimes as ISO strings)."""
    if row is None:
        return None
    return json.loads(json.dumps(row, default=str))


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Write one audit row in the caller's transaction (so it commits with the change)."""
    conn.execute(
        insert(audit_log).values(
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            before=jsonable(before),
            after=jsonable(after),
        )
    )


def list_entries(
    conn: Connection, *, entity: str | None, entity_id: int | None, limit: int
) -> list[dict[str, Any]]:
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if entity is not None:
        query = query.where(audit_log.c.entity == entity)
    if entity_id is not None:
        query = query.where(audit_log.c.entity_id == entity_id)
    return [dict(r._mapping) for r in conn.execute(query)]
