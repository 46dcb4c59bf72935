"""The ``backtests`` queue as the runner sees it: claim a job, record its outcome.

A job is claimed by moving it ``queued → running`` in one statement, so two runners (the
Dagster job and a manual ``python -m streaming.backtest --pending``) never run it twice;
``--pending`` claims with ``FOR UPDATE SKIP LOCKED``. Every outcome is recorded: results and
the Delta version read on success, a one-paragraph error on failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from catalog.db import get_engine
from catalog.tables import backtests, rule_versions, rules

MAX_ERROR = 2000


class JobNotClaimable(LookupError):
    """The job does not exist, or is not in a state this runner may start it from."""


class BacktestError(RuntimeError):
    """The job cannot run as asked (the message says why)."""


@dataclass(frozen=True)
class Job:
    """One claimed backtest or look-back."""

    id: int
    pipeline_id: int
    kind: str
    expression: str
    since: datetime
    until: datetime
    sample_size: int
    rule_id: int | None = None
    rule_version: int | None = None


def _job(row: Any) -> Job:
    return Job(row.id, row.pipeline_id, row.kind, row.rule_expression, row.since, row.until,
               row.sample_size, row.rule_id, row.rule_version)


def claim(job_id: int, *, rerun: bool = False) -> Job:
    """Move a queued job (any finished one too with ``rerun``) to running and return it."""
    allowed = ["queued", "succeeded", "failed"] if rerun else ["queued"]
    with get_engine().begin() as conn:
        row = conn.execute(
            update(backtests)
            .where(backtests.c.id == job_id, backtests.c.status.in_(allowed))
            .values(status="running", started_at=func.now(), finished_at=None, error=None)
            .returning(backtests)
        ).first()
        if row is None:
            status = conn.execute(
                select(backtests.c.status).where(backtests.c.id == job_id)
            ).scalar_one_or_none()
    if row is None:
        if status is None:
            raise JobNotClaimable(f"backtest {job_id} does not exist")
        hint = "" if rerun else " (use --rerun to run a finished job again)"
        raise JobNotClaimable(f"backtest {job_id} is {status}, not queued{hint}")
    return _job(row)


def claim_next(pipeline_id: int | None = None) -> Job | None:
    """The oldest queued job (of one pipeline when given), claimed; ``None`` when none is."""
    query = select(backtests.c.id).where(backtests.c.status == "queued")
    if pipeline_id is not None:
        query = query.where(backtests.c.pipeline_id == pipeline_id)
    oldest = (
        query.order_by(backtests.c.id).limit(1).with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with get_engine().begin() as conn:
        row = conn.execute(
            update(backtests).where(backtests.c.id == oldest)
            .values(status="running", started_at=func.now(), finished_at=None, error=None)
            .returning(backtests)
        ).first()
    return _job(row) if row is not None else None


def finish(job_id: int, *, delta_version: int | None = None,
           results: dict[str, Any] | None = None, error: str | None = None) -> None:
    """Record the outcome: ``succeeded`` with results, or ``failed`` with ``error``."""
    values: dict[str, Any] = {"finished_at": func.now()}
    if error is not None:
        values.update(status="failed", error=error[:MAX_ERROR])
    else:
        values.update(status="succeeded", delta_version=delta_version, results=results)
    with get_engine().begin() as conn:
        conn.execute(update(backtests).where(backtests.c.id == job_id).values(**values))


def describe(exc: BaseException) -> str:
    """A clear, bounded error text (Spark's first lines, not its JVM stack)."""
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("\tat ")][:4]
    return f"{type(exc).__name__}: {' '.join(lines) if lines else repr(exc)}"[:MAX_ERROR]


@dataclass(frozen=True)
class RuleAtVersion:
    """A rule as it was at one version (what a look-back alerts with)."""

    id: int
    version: int
    expression: str
    severity: str
    score: float | None
    description: str | None


def rule_for_lookback(rule_id: int, version: int) -> RuleAtVersion:
    """The rule's version the look-back was queued for; the rule must still be active."""
    with get_engine().connect() as conn:
        current = conn.execute(
            select(rules.c.is_active).where(rules.c.id == rule_id)
        ).first()
        row = conn.execute(
            select(rule_versions).where(rule_versions.c.rule_id == rule_id,
                                        rule_versions.c.version == version)
        ).first()
    if current is None:
        raise LookupError(f"rule {rule_id} was deleted: no look-back")
    if not current.is_active:
        raise LookupError(f"rule {rule_id} is disabled: no look-back")
    if row is None:
        raise LookupError(f"rule {rule_id} has no version {version}")
    return RuleAtVersion(rule_id, version, row.rule_expression, row.severity, row.score,
                         row.description)
