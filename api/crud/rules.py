"""Rule operations. Every change bumps the rule's version (kept in `rule_versions`) and the
pipeline's `rules_version`, announced at commit (`catalog.rule_changes`) to the streaming job,
which hot-reloads its rules (and polls the version as a fallback)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from api.crud import audit
from catalog.rule_changes import notify_rules_changed
from catalog.tables import pipelines, rule_versions, rules

VERSIONED = ("rule_expression", "severity", "score", "description", "is_active")


def get_rule(conn: Connection, *, rule_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(rules).where(rules.c.id == rule_id)).first()
    return dict(row._mapping) if row is not None else None


def list_rules(conn: Connection, *, pipeline_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(rules).where(rules.c.pipeline_id == pipeline_id).order_by(rules.c.id)
    )
    return [dict(r._mapping) for r in rows]


def list_versions(conn: Connection, *, rule_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(rule_versions)
        .where(rule_versions.c.rule_id == rule_id)
        .order_by(rule_versions.c.version)
    )
    return [dict(r._mapping) for r in rows]


def _bump_pipeline(conn: Connection, pipeline_id: int) -> None:
    conn.execute(
        update(pipelines)
        .where(pipelines.c.id == pipeline_id)
        .values(rules_version=pipelines.c.rules_version + 1)
    )
    notify_rules_changed(conn, pipeline_id)


def _snapshot(conn: Connection, row: dict[str, Any], actor: str) -> None:
    conn.execute(
        insert(rule_versions).values(
            rule_id=row["id"],
            pipeline_id=row["pipeline_id"],
            version=row["version"],
            changed_by=actor,
            **{k: row[k] for k in VERSIONED},
        )
    )


def create_rule(
    conn: Connection,
    *,
    actor: str,
    pipeline_id: int,
    rule_expression: str,
    severity: str,
    description: str | None,
    score: float | None,
    is_active: bool,
) -> int:
    rule_id: int = conn.execute(
        insert(rules)
        .values(
            pipeline_id=pipeline_id,
            rule_expression=rule_expression,
            severity=severity,
            description=description,
            score=score,
            is_active=is_active,
            version=1,
        )
        .returning(rules.c.id)
    ).scalar_one()
    row = get_rule(conn, rule_id=rule_id)
    assert row is not None
    _snapshot(conn, row, actor)
    _bump_pipeline(conn, pipeline_id)
    audit.record(
        conn,
        actor=actor,
        action="rule.create",
        entity="rule",
        entity_id=rule_id,
        before=None,
        after=row,
    )
    return rule_id


def update_rule(
    conn: Connection, *, actor: str, rule_id: int, changes: dict[str, Any], action: str
) -> dict[str, Any] | None:
    """Apply `changes` as a new version; returns the new row (None if the rule is gone).

    Changes that leave every value as it is are a no-op: no new version (the version is part of
    every alert id), no audit entry. A change to the expression resets the rule's state to `ok`
    (the stream re-analyses it).
    """
    before = conn.execute(select(rules).where(rules.c.id == rule_id).with_for_update()).first()
    if before is None:
        return None
    before_row = dict(before._mapping)
    changes = {k: v for k, v in changes.items() if before_row.get(k) != v}
    if not changes:
        return get_rule(conn, rule_id=rule_id)
    values: dict[str, Any] = dict(changes, version=before_row["version"] + 1, updated_at=func.now())
    if "rule_expression" in changes:
        values.update(state="ok", error_message=None)
    conn.execute(update(rules).where(rules.c.id == rule_id).values(**values))
    after = get_rule(conn, rule_id=rule_id)
    assert after is not None
    _snapshot(conn, after, actor)
    _bump_pipeline(conn, after["pipeline_id"])
    audit.record(
        conn,
        actor=actor,
        action=action,
        entity="rule",
        entity_id=rule_id,
        before=before_row,
        after=after,
    )
    return after


def delete_rule(conn: Connection, *, actor: str, rule_id: int) -> bool:
    before = get_rule(conn, rule_id=rule_id)
    if before is None:
        return False
    conn.execute(delete(rules).where(rules.c.id == rule_id))
    _bump_pipeline(conn, before["pipeline_id"])
    audit.record(
        conn,
        actor=actor,
        action="rule.delete",
        entity="rule",
        entity_id=rule_id,
        before=before,
        after=None,
    )
    return True
