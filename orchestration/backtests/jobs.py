"""Job ``rule_backtest``: run one backtest or look-back the API queued.

``POST /api/pipelines/{id}/rules/backtest`` and a rule created with ``lookback_days`` insert a
``queued`` row in ``backtests``. The sensor launches one ``rule_backtest`` run per queued row
(run key ``backtest-<id>``, so each is launched once); the run's op starts
``python -m streaming.backtest --id N`` as a child (Spark stays out of Dagster's processes),
and a child that fails fails the run with the job's own recorded error.
"""

import subprocess
import sys
import time
from pathlib import Path

from dagster import (
    Config,
    DagsterExecutionInterruptedError,
    Failure,
    MetadataValue,
    OpExecutionContext,
    in_process_executor,
    job,
    op,
)
from sqlalchemy import Connection, func, select, update

from catalog.settings import PROJECT_ROOT, get_settings
from catalog.tables import backtests, pipelines
from orchestration.lib.catalog import CatalogResource
from orchestration.lib.tags import KIND_TAG

BACKTEST_TAG = "sentinel/backtest_id"
BACKTEST_PIPELINE_TAG = "sentinel/backtest_pipeline_id"


def queued(conn: Connection, names_like: str | None = None, limit: int = 20) -> list[dict]:
    """Queued jobs, oldest first (only of pipelines named like ``names_like`` when given)."""
    query = (
        select(backtests.c.id, backtests.c.pipeline_id, backtests.c.kind)
        .join(pipelines, pipelines.c.id == backtests.c.pipeline_id)
        .where(backtests.c.status == "queued").order_by(backtests.c.id).limit(limit)
    )
    if names_like:
        query = query.where(pipelines.c.name.like(names_like))
    return [dict(r) for r in conn.execute(query).mappings()]


def job_row(conn: Connection, backtest_id: int) -> dict | None:
    row = conn.execute(select(backtests).where(backtests.c.id == backtest_id)).mappings().first()
    return dict(row) if row else None


def mark_failed(conn: Connection, backtest_id: int, error: str) -> None:
    """Fail a job the child left queued/running (it died before it could say why)."""
    conn.execute(
        update(backtests)
        .where(backtests.c.id == backtest_id, backtests.c.status.in_(("queued", "running")))
        .values(status="failed", error=error[:2000], finished_at=func.now())
    )


class BacktestConfig(Config):
    """Which queued job to run."""

    backtest_id: int
    poll_seconds: float = 2.0


def _log_path(backtest_id: int) -> Path:
    folder = Path(get_settings().home) / "logs" / "backtests"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"backtest_{backtest_id}.log"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@op(description="Run one queued backtest or look-back (python -m streaming.backtest --id N).",
    tags={KIND_TAG: "backtest"})
def run_backtest(context: OpExecutionContext, config: BacktestConfig,
                 catalog: CatalogResource) -> None:
    log = _log_path(config.backtest_id)
    cmd = [sys.executable, "-m", "streaming.backtest", "--id", str(config.backtest_id)]
    with log.open("ab") as out:
        child = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    context.log.info("started streaming.backtest for job %s (pid %s), log %s",
                     config.backtest_id, child.pid, log)
    try:
        while (rc := child.poll()) is None:
            time.sleep(config.poll_seconds)
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        child.terminate()
        child.wait(60)
        catalog.call(mark_failed, config.backtest_id, "terminated from Dagster")
        raise
    row = catalog.call(job_row, config.backtest_id) or {}
    if rc == 0 and row.get("status") == "succeeded":
        results = row.get("results") or {}
        summary = {k: v for k, v in results.items() if isinstance(v, int | float | str)}
        context.log.info("%s %s succeeded (delta_version %s): %s", row["kind"], row["id"],
                         row.get("delta_version"), summary)
        return
    if row.get("error"):  # the job's own account of the failure
        error = row["error"]
        summary = error.splitlines()[0]
    else:  # refused or died before it could record one: its log's last line says why
        error = _tail(log) or f"exit code {rc}"
        summary = [line for line in error.splitlines() if line.strip()][-1]
    catalog.call(mark_failed, config.backtest_id, summary)
    raise Failure(
        description=f"backtest {config.backtest_id} failed (exit {rc}): {summary}"[:2000],
        metadata={"exit_code": rc, "error": MetadataValue.text(error[-4000:]),
                  "log": MetadataValue.path(str(log))},
    )


@job(description="One rule backtest or look-back (launched by backtest_queue).",
     tags={KIND_TAG: "backtest"}, executor_def=in_process_executor)
def rule_backtest():
    run_backtest()


def backtest_run_config(backtest_id: int) -> dict:
    return {"ops": {"run_backtest": {"config": {"backtest_id": backtest_id}}}}


BACKTEST_JOBS = [rule_backtest]
