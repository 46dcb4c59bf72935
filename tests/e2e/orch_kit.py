"""What the orchestration e2e tests share: a private ``dagster dev`` and independent readers.

The readers never ask the code under test: Delta tables are rebuilt from their JSON commits and
read with pyarrow, Dagster is read through its instance storage, processes through ``/proc``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from catalog.db import get_engine
from catalog.settings import get_settings
from catalog.tables import fraud_alerts, stream_runs
from orchestration.instance import write

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# Small knobs so that the whole scenario fits in CI's budget (all are product settings).
TUNING = {
    "SENTINEL_TRIGGER_INTERVAL_SECONDS": "2",
    "SENTINEL_MAX_OFFSETS_PER_TRIGGER": "100",  # a burst takes several batches: kill mid-way
    "SENTINEL_WATCHER_INTERVAL_SECONDS": "5",  # the daemon's sensor loop runs every 5 s
    "SENTINEL_STREAM_MAX_ATTEMPTS": "3",
    "SENTINEL_STREAM_BACKOFF_SECONDS": "2",
    "SENTINEL_STREAM_BACKOFF_MAX_SECONDS": "4",
    "SENTINEL_STREAM_HEARTBEAT_SECONDS": "30",
}


def wait_for(what: str, fn: Callable[[], T | None], timeout: float, every: float = 2.0) -> T:
    """Poll ``fn`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    start = time.monotonic()
    deadline = start + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            print(f"[{time.monotonic() - start:6.1f}s] {what}")
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DagsterDev:
    uid: str
    home: Path
    warehouse: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def table(self, layer: str, pipeline_id: int, name: str) -> Path:
        return self.warehouse / layer / f"pipeline_{pipeline_id}" / name


@contextmanager
def dagster_dev(base: Path, uid: str) -> Iterator[DagsterDev]:
    """``dagster dev`` (webserver + daemon) on a spare port, owning pipelines ``e2e-<uid>-…``."""
    home, port, log_path = base / "dagster", _free_port(), base / "dagster.log"
    write(home, "sqlite")
    env = {**os.environ, **TUNING, "DAGSTER_HOME": str(home),
           "SENTINEL_DATABASE_URL": get_settings().database_dsn,
           "SENTINEL_REDIS_URL": os.environ.get("SENTINEL_TEST_REDIS_URL",
                                                "redis://127.0.0.1:6379/13"),
           "SENTINEL_WAREHOUSE": str(base / "warehouse"),
           "SENTINEL_WATCH_PIPELINES_LIKE": f"e2e-{uid}-%"}
    # Parse the dbt manifest here (a fresh clone has none) so that the code server loads fast.
    from orchestration.dbt.project import ensure_manifest

    ensure_manifest()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/dagster"), "dev", "-w", str(ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"dagster dev exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=3):
                return True
        except OSError:
            return False

    try:
        wait_for("dagster dev", up, 240)
        yield DagsterDev(uid, home, base / "warehouse", port, log_path)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: runs stop their streams gracefully
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


# --- the catalog, read directly ----------------------------------------------------------

def stream_rows(pipeline_id: int) -> list[Any]:
    """Every ``stream_runs`` row of the pipeline, oldest first."""
    with get_engine().connect() as conn:
        return list(conn.execute(select(stream_runs).where(stream_runs.c.pipeline_id == pipeline_id)
                                 .order_by(stream_runs.c.id)))


def alert_event_ids(pipeline_id: int) -> list[str]:
    with get_engine().connect() as conn:
        return list(conn.execute(select(fraud_alerts.c.event_id)
                                 .where(fraud_alerts.c.pipeline_id == pipeline_id)).scalars())


# --- Delta tables, read without the code under test --------------------------------------

def delta_files(table: Path) -> list[Path]:
    """The live data files of a Delta table: every JSON commit's adds minus its removes."""
    live: dict[str, None] = {}
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live[action["add"]["path"]] = None
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    return [table / unquote(p) for p in live]


def read_delta(table: Path, columns: list[str]) -> list[dict[str, Any]]:
    """``columns`` of every row; a column a file predates (schema evolution) reads as None."""
    parts = []
    for path in delta_files(table):
        data = pq.read_table(path)
        for c in columns:
            if c not in data.column_names:
                data = data.append_column(c, pa.nulls(data.num_rows, pa.string()))
        parts.append(data.select(columns))
    return pa.concat_tables(parts).to_pylist() if parts else []


# --- processes ---------------------------------------------------------------------------

def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def stream_process(dagster_run_id: str) -> int | None:
    """The pid of the ``streaming.job`` child that a Dagster run started."""
    for pid in _pids():
        cmd = _cmdline(pid)
        if "streaming.job" in cmd and dagster_run_id in cmd:
            return pid
    return None


def process_group(pgid: int) -> dict[int, str]:
    """pid → command of every live process in the group (the Python driver and its JVM)."""
    members = {}
    for pid in _pids():
        try:
            if os.getpgid(pid) == pgid:
                stat = Path(f"/proc/{pid}/stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    members[pid] = " ".join(_cmdline(pid))[:120]
        except (OSError, IndexError):
            continue
    return members
