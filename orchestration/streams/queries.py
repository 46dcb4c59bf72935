"""What the stream supervision reads from and writes to the catalog (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from catalog.tables import pipelines as pipelines_table
from catalog.tables import stream_runs
from orchestration.streams.reconcile import DesiredPipeline, ExternalStream, error_summary

FAILING = "failing"


def desired(conn: Connection, names_like: str | None = None) -> list[DesiredPipeline]:
    """Every pipeline's desired state (only names matching ``names_like`` when given)."""
    table = pipelines_table
    query = select(table.c.id, table.c.status, table.c.schema_version, table.c.updated_at)
    if names_like:
        query = query.where(table.c.name.like(names_like))
    rows = conn.execute(query).all()
    return [DesiredPipeline(r.id, r.status, r.schema_version, r.updated_at) for r in rows]


def pipeline_ids(conn: Connection) -> set[int]:
    return set(conn.execute(select(pipelines_table.c.id)).scalars())


def open_streams(conn: Connection) -> list[ExternalStream]:
    """``stream_runs`` rows not ended yet (a stream is running or died without a word)."""
    c = stream_runs.c
    rows = conn.execute(
        select(c.id, c.pipeline_id, c.dagster_run_id, c.updated_at).where(c.ended_at.is_(None))
    ).all()
    return [ExternalStream(r.pipeline_id, r.id, r.dagster_run_id, r.updated_at) for r in rows]


def errors_by_dagster_run(conn: Connection, run_ids: Iterable[str]) -> dict[str, str]:
    """The streaming job's own last error for each Dagster run that recorded one."""
    ids = list(run_ids)
    if not ids:
        return {}
    c = stream_runs.c
    rows = conn.execute(
        select(c.dagster_run_id, c.last_error)
        .where(c.dagster_run_id.in_(ids), c.last_error.is_not(None))
    ).all()
    return {r.dagster_run_id: r.last_error for r in rows}


def progress(conn: Connection, dagster_run_id: str) -> dict[str, Any] | None:
    """The ``stream_runs`` row the streaming job writes for this Dagster run."""
    c = stream_runs.c
    row = conn.execute(
        select(stream_runs).where(c.dagster_run_id == dagster_run_id).order_by(c.id.desc())
    ).mappings().first()
    return dict(row) if row else None


def mark_failing(conn: Connection, pipeline_id: int, attempts: int, error: str) -> bool:
    """Record on the latest run that the watcher gave up; True when that is news.

    ``GET /api/pipelines/{id}/health`` reads the latest ``stream_runs`` row: it then shows
    ``state=failing`` with the last error and the number of attempts.
    """
    c = stream_runs.c
    latest = conn.execute(
        select(c.id, c.status).where(c.pipeline_id == pipeline_id)
        .order_by(c.started_at.desc(), c.id.desc()).limit(1)
    ).first()
    summary = error_summary(error)
    detail = "" if summary == error.strip() else f"\n{error}"
    message = f"gave up after {attempts} failed attempts: {summary}{detail}"[:4000]
    if latest is not None and latest.status == FAILING:
        return False
    if latest is None:
        conn.execute(insert(stream_runs).values(
            pipeline_id=pipeline_id, status=FAILING, last_error=message,
            restarts=attempts, ended_at=func.now()))
        return True
    conn.execute(update(stream_runs).where(c.id == latest.id).values(
        status=FAILING, last_error=message, restarts=attempts,
        ended_at=func.coalesce(c.ended_at, func.now()), updated_at=func.now()))
    return True


def close_run(conn: Connection, dagster_run_id: str, status: str, error: str) -> bool:
    """End the run's ``stream_runs`` row if its process died before it could (True if so).

    A stream killed by SIGKILL (or the OOM killer) leaves its row open and ``running``: the
    health endpoint would show a dead stream as live and the watcher would wait for its
    heartbeat to go stale before relaunching it.
    """
    c = stream_runs.c
    closed = conn.execute(
        update(stream_runs)
        .where(c.dagster_run_id == dagster_run_id, c.ended_at.is_(None))
        .values(status=status, last_error=error[:4000], ended_at=func.now(),
                updated_at=func.now())
    )
    return bool(closed.rowcount)

