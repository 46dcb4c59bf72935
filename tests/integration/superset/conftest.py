"""Fixtures of the Superset tests: a running Superset, marts with known data, provisioning.

Superset on 127.0.0.1:8088 is reused when it answers (``make up``), else started with
``deploy/local/superset.sh start`` (installs .venv-superset when missing) and stopped at the
end. The marts come from the lakehouse suite's fixtures (two pipelines with known Delta data,
registered under a per-session schema prefix) plus ``dbt run``; the catalog database of the
session gets alerts in ``fraud_alerts``. Provisioning points the "Sentinel Lakehouse" datasets
at that prefix and "Sentinel Alerts" at the test catalog; when the Superset was reused, it is
provisioned again at the end with the stack's own settings.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import insert

from catalog.db import get_engine
from catalog.tables import fraud_alerts
from tests.integration.lakehouse.conftest import (  # noqa: F401  (fixtures reused here)
    Lake,
    lake,
    lake_prefix,
    sql_endpoint_log,
    thrift_endpoint,
)

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "deploy" / "local" / "superset.sh"
SUPERSET_PY = ROOT / ".venv-superset" / "bin" / "python"
HOME = Path(os.environ.get("SENTINEL_HOME") or ROOT / ".sentinel")
PORT = int(os.environ.get("SENTINEL_SUPERSET_PORT", "8088"))
URL = f"http://127.0.0.1:{PORT}"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def run_script(*args: str, timeout: int = 900) -> str:
    proc = subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"superset.sh {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@dataclass
class Server:
    url: str
    started: bool  # by this session (else reused, e.g. from `make up`)


@pytest.fixture(scope="session")
def superset_server(catalog_db: None) -> Iterator[Server]:
    """Started after the catalog database exists: the read-only role is granted on it."""
    started = not port_open(PORT)
    if started:
        run_script("start")
    yield Server(URL, started)
    if started:
        run_script("stop", timeout=120)


class Api:
    """The REST API as user admin (JWT + CSRF, like deploy/superset/provision.py)."""

    def __init__(self, url: str) -> None:
        self.url, self.http = url, requests.Session()
        password = (HOME / "superset-admin-password").read_text().strip()
        r = self.http.post(f"{url}/api/v1/security/login", timeout=60, json={
            "username": "admin", "password": password, "provider": "db", "refresh": True})
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        csrf = self.get("/api/v1/security/csrf_token/")["result"]
        self.http.headers.update({"X-CSRFToken": csrf, "Referer": url})

    def get(self, path: str) -> Any:
        r = self.http.get(self.url + path, timeout=300)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:1000]}"
        return r.json()

    def post(self, path: str, body: dict) -> Any:
        r = self.http.post(self.url + path, json=body, timeout=300)
        assert r.status_code in (200, 201, 202), f"POST {path}: {r.status_code} {r.text[:2000]}"
        return r.json()

    def all(self, resource: str) -> list[dict]:
        out, page = [], 0
        while True:
            rows = self.get(f"/api/v1/{resource}/?q=(page:{page},page_size:100)")["result"]
            out += rows
            if len(rows) < 100:
                return out
            page += 1


@dataclass
class Provisioned:
    api: Api
    runs: list[dict]  # the ids printed by each provisioning run
    lake: Lake
    alerts: list[dict]  # the rows inserted into fraud_alerts
    env: dict[str, str]  # the environment the provisioning ran with


def dbt_run(prefix: str, tmp: Path) -> None:
    exe = Path(sys.executable).with_name("dbt")
    project = ROOT / "lakehouse_models"
    env = {**os.environ, "SENTINEL_LAKEHOUSE_SCHEMA_PREFIX": prefix,
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(
        [str(exe), "run", "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (
        f"{proc.stdout[-6000:]}{proc.stderr[-2000:]}\n{sql_endpoint_log()}")


def insert_alerts(lake: Lake) -> list[dict]:  # noqa: F811
    """Every alert of the lake's pipelines, as the stream mirrors them to Postgres."""
    rows = []
    for p in lake.pipelines:
        for i, a in enumerate(p.alerts()):
            r = a["rule"]
            rows.append({"alert_id": f"it-{p.id}-{r.id}-{a['event_id']}", "pipeline_id": p.id,
                         "rule_id": r.id, "rule_version": 1, "severity": r.severity,
                         "score": r.score, "rule_description": f"rule {r.id}",
                         "event_id": a["event_id"], "event_time": a["event_time"],
                         "alert_timestamp": a["event_time"] + timedelta(seconds=i % 7),
                         "transaction_data": {"event_id": a["event_id"]},
                         "kafka_partition": 0, "kafka_offset": i})
    with get_engine().begin() as conn:
        conn.execute(insert(fraud_alerts), rows)
    return rows


def provision(env: dict[str, str]) -> dict:
    proc = subprocess.run([str(SUPERSET_PY), str(ROOT / "deploy" / "superset" / "provision.py"),
                           "--url", URL, "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def provisioned(superset_server: Server, lake: Lake,  # noqa: F811
                thrift_endpoint: tuple[str, int],  # noqa: F811
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    from orchestration.lake.registration import register_all

    register_all(settings=lake.settings)
    dbt_run(lake.prefix, tmp_path_factory.mktemp("dbt"))
    alerts = insert_alerts(lake)
    db = str(get_engine().url.database)
    run_script("reader-grants", db)
    host, port = thrift_endpoint
    env = {**os.environ, "SENTINEL_LAKEHOUSE_SCHEMA_PREFIX": lake.prefix,
           "SENTINEL_THRIFT_HOST": host, "SENTINEL_THRIFT_PORT": str(port)}
    runs = [provision(env), provision(env)]
    yield Provisioned(Api(superset_server.url), runs, lake, alerts, env)
    if not superset_server.started:  # a reused Superset: back to the stack's own settings
        restore = {k: v for k, v in os.environ.items()
                   if k not in ("SENTINEL_LAKEHOUSE_SCHEMA_PREFIX", "SENTINEL_DATABASE_URL")}
        subprocess.run([str(SUPERSET_PY), str(ROOT / "deploy" / "superset" / "provision.py"),
                        "--url", URL], cwd=ROOT, env=restore, capture_output=True, timeout=900)
