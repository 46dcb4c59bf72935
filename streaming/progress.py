"""The ``stream_runs`` row of a streaming run: what operators and Dagster see.

One row per run (start → running → stopped/failed), updated after every micro-batch with the
batch's size, rate, duration, alerts and quarantined rows, and the Kafka lag when known.
"""

from __future__ import annotations

from sqlalchemy import func, insert, update

from catalog.db import get_engine
from catalog.tables import stream_runs


def start_run(
    pipeline_id: int, schema_version: int, *, dagster_run_id: str | None = None
) -> int:
    """Insert the run's row (status ``starting``) and return its id."""
    with get_engine().begin() as conn:
        return conn.execute(
            insert(stream_runs)
            .values(
                pipeline_id=pipeline_id,
                schema_version=schema_version,
                dagster_run_id=dagster_run_id,
                status="starting",
            )
            .returning(stream_runs.c.id)
        ).scalar_one()


def set_status(run_id: int, status: str, *, query_id: str | None = None,
               error: str | None = None, ended: bool = False) -> None:
    """Move the run to ``running``/``stopped``/``failed`` (with the error text if any)."""
    values: dict = {"status": status, "updated_at": func.now()}
    if query_id is not None:
        values["query_id"] = query_id
    if error is not None:
        values["last_error"] = error[:4000]
    if ended:
        values["ended_at"] = func.now()
    with get_engine().begin() as conn:
        conn.execute(update(stream_runs).where(stream_runs.c.id == run_id).values(**values))


def record_batch(
    run_id: int,
    *,
    batch_id: int,
    rows: int,
    duration_ms: int,
    alerts: int,
    quarantined: int,
) -> None:
    """Add one finished micro-batch to the run's totals."""
    rate = rows / (duration_ms / 1000) if duration_ms > 0 else None
    c = stream_runs.c
    with get_engine().begin() as conn:
        conn.execute(
            update(stream_runs)
            .where(c.id == run_id)
            .values(
                status="running",
                last_batch_id=batch_id,
                last_batch_at=func.now(),
                updated_at=func.now(),
                input_rows=c.input_rows + rows,
                last_batch_rows=rows,
                rows_per_second=rate,
                batch_duration_ms=duration_ms,
                alerts=c.alerts + alerts,
                quarantined=c.quarantined + quarantined,
            )
        )


def record_lag(run_id: int, lag: int | None) -> None:
    """The Kafka records not yet read; also the run's heartbeat (an idle stream is alive)."""
    with get_engine().begin() as conn:
        conn.execute(
            update(stream_runs)
            .where(stream_runs.c.id == run_id)
            .values(kafka_lag=lag, updated_at=func.now())
        )


def set_rules_version(run_id: int, version: int | None) -> None:
    """The catalog rule version the run's detect query evaluates now."""
    with get_engine().begin() as conn:
        conn.execute(
            update(stream_runs)
            .where(stream_runs.c.id == run_id)
            .values(rules_version=version, updated_at=func.now())
        )
