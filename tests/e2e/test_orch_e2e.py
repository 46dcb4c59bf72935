"""The whole loop with the real daemon: API create → the stream starts by itself → pause → ends.

Starts ``dagster dev`` (webserver + daemon + code server) on a spare port with its own
DAGSTER_HOME (SQLite) and warehouse, watching only this test's pipelines. Needs the services of
``make services`` (Postgres, Kafka, Redis). Expectations are computed from the generated events.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from sqlalchemy import select

from catalog.db import get_engine
from catalog.settings import get_settings
from catalog.tables import stream_runs
from orchestration.delta_log import table_stats
from orchestration.instance import write
from orchestration.jobs import PIPELINE_TAG
from streaming.producer import generate_events, send
from tests.support import auth

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "float", "nullable": False},
    {"name": "currency", "type": "string", "nullable": False},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, fn, timeout: float, every: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def dagster(tmp_path, catalog_db) -> Iterator[dict]:
    """A private `dagster dev` whose watcher owns only pipelines named ``e2e-<uid>-…``."""
    uid = uuid.uuid4().hex[:8]
    home, port = tmp_path / "dagster", _free_port()
    write(home, "sqlite")
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "SENTINEL_DATABASE_URL": get_settings().database_dsn,
           "SENTINEL_WAREHOUSE": str(tmp_path / "warehouse"),
           "SENTINEL_TRIGGER_INTERVAL_SECONDS": "2",
           "SENTINEL_WATCH_PIPELINES_LIKE": f"e2e-{uid}-%"}
    # Parse the dbt manifest here (a fresh clone has none) so that the code server loads fast.
    from orchestration.dbt_assets import ensure_manifest

    ensure_manifest()
    log = (tmp_path / "dagster.log").open("wb")
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/dagster"), "dev", "-w", str(ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=3):
                return True
        except OSError:
            return proc.poll() is not None and pytest.fail("dagster dev exited; see log")

    try:
        wait_for("dagster dev", up, 240)
        yield {"uid": uid, "home": home, "warehouse": tmp_path / "warehouse", "port": port}
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: runs stop their streams gracefully
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def latest_run(pipeline_id: int):
    with get_engine().connect() as conn:
        return conn.execute(select(stream_runs).where(stream_runs.c.pipeline_id == pipeline_id)
                            .order_by(stream_runs.c.id.desc())).first()


def test_created_pipeline_streams_by_itself_and_pause_ends_the_run(dagster, client, api_keys):
    admin = auth(api_keys["admin"])
    name = f"e2e-{dagster['uid']}-payments"
    created = client.post("/api/pipelines", headers=admin, json={
        "name": name, "kafka_topic": name, "schema": SCHEMA, "key_field": "transaction_id"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    events = generate_events(SCHEMA, 60, seed=7, key_field="transaction_id",
                             id_prefix=dagster["uid"], malformed_share=0.1)
    valid = sum(1 for e in events if e.malformed is None)
    send(events, name, get_settings().kafka_bootstrap_servers)

    t0 = time.monotonic()
    started = wait_for("a stream_runs row from a Dagster run",
                       lambda: (r := latest_run(pid)) is not None and r.dagster_run_id and r, 240)
    print(f"stream started by the watcher after {time.monotonic() - t0:.0f}s")
    row = wait_for("every valid event in bronze",
                   lambda: (r := latest_run(pid)) and r.input_rows >= len(events) and r, 300)
    assert row.last_batch_id is not None and row.quarantined == len(events) - valid
    bronze = dagster["warehouse"] / "bronze" / f"pipeline_{pid}" / "events"
    assert table_stats(str(bronze)).rows == valid

    paused = client.patch(f"/api/pipelines/{pid}/status", headers=admin,
                          json={"status": "paused"})
    assert paused.status_code == 200
    ended = wait_for("the stream to stop",
                     lambda: (r := latest_run(pid)) and r.ended_at is not None and r, 180)
    assert ended.status == "stopped" and ended.dagster_run_id == started.dagster_run_id

    with DagsterInstance.from_config(str(dagster["home"])) as instance:
        def finished():
            (rec,) = instance.get_run_records(RunsFilter(tags={PIPELINE_TAG: str(pid)}))
            return rec.dagster_run.status in (DagsterRunStatus.CANCELED,
                                              DagsterRunStatus.SUCCESS) and rec
        rec = wait_for("the Dagster run to end", finished, 120)
    assert rec.dagster_run.run_id == started.dagster_run_id
    assert table_stats(str(bronze)).rows == valid  # nothing lost or doubled on the way out
