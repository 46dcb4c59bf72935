"""Backtest and look-back jobs: queued here, run by ``streaming.backtest`` (never the API)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, literal, select

from catalog.tables import backtests


def create_backtest(
    conn: Connection,
    *,
    pipeline_id: int,
    rule_expression: str,
    since: datetime,
    until: datetime,
    sample_size: int,
    requested_by: str,
) -> int:
    """Queue a backtest of ``rule_expression`` over ``[since, until)``; returns its id."""
    job_id: int = conn.execute(
        insert(backtests)
        .values(pipeline_id=pipeline_id, kind="backtest", rule_expression=rule_expression,
                since=since, until=until, sample_size=sample_size, requested_by=requested_by)
        .returning(backtests.c.id)
    ).scalar_one()
    return job_id


def create_lookback(
    conn: Connection,
    *,
    pipeline_id: int,
    rule_id: int,
    rule_version: int,
    rule_expression: str,
    days: int,
    requested_by: str,
) -> int:
    """Queue a look-back of a new rule over the last ``days`` days up to now.

    ``until`` is the transaction's ``now()``, the same instant as the rule's ``created_at``
    when called in the rule's own transaction: the stream takes over from there.
    """
    job_id: int = conn.execute(
        insert(backtests)
        .values(pipeline_id=pipeline_id, kind="lookback", rule_id=rule_id,
                rule_version=rule_version, rule_expression=rule_expression,
                since=func.now() - literal(timedelta(days=days)), until=func.now(),
                sample_size=0, requested_by=requested_by)
        .returning(backtests.c.id)
    ).scalar_one()
    return job_id


def get_backtest(conn: Connection, *, pipeline_id: int, backtest_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(backtests).where(backtests.c.id == backtest_id,
                                backtests.c.pipeline_id == pipeline_id)
    ).first()
    return dict(row._mapping) if row is not None else None


def list_backtests(conn: Connection, *, pipeline_id: int, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(backtests).where(backtests.c.pipeline_id == pipeline_id)
        .order_by(backtests.c.id.desc()).limit(limit)
    )
    return [dict(r._mapping) for r in rows]
