"""What only the stack `make up` starts can show: its summary and Dagster's daemon at work.

The stack is started (or found running: `make up` reuses what runs) with
``deploy/local/stack.sh up`` and the stack's own settings, not the test session's database,
Redis and warehouse; the apps it started here are stopped at the end (``stack.sh stop-apps``;
the shared services stay).

- ``make up`` ends with what to open first (the dashboards by slug, Dagster's runs page, the
  API docs) and the time to the demo's first alert;
- on the stack's own Dagster instance, the first dbt build is followed by a
  ``provision_superset`` run that nobody launched by hand, and "Fraud Overview" then shows
  >= 6 charts, each drawn with data.

Everything else a newcomer's first run checks (the README's quick start verbatim, the demo's
event times, Live Alerts within 15 s, Fraud Overview before and after the first build) runs in
``make test`` on the suite's own Superset and marts:
``tests/integration/superset/test_first_run.py``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import (
    CHART_STATE_JS,
    artifact,
    headless_chromium,
    settled_charts,
    superset_login,
)
from tests.support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.first_run, pytest.mark.timeout(3000)]

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("SENTINEL_HOME") or ROOT / ".sentinel")
HOST = "127.0.0.1"
API, DAGSTER, SUPERSET = (f"http://{HOST}:{p}" for p in (8000, 3000, 8088))
DEMO = "Payment Transactions"
# the test session points these at its own database, Redis and warehouse; the stack has its own
SESSION_ONLY = ("SENTINEL_DATABASE_URL", "SENTINEL_REDIS_URL", "SENTINEL_WAREHOUSE",
                "SENTINEL_LAKEHOUSE_SCHEMA_PREFIX", "SENTINEL_TEST_DATABASE",
                "SENTINEL_TEST_REDIS_URL", "_SENTINEL_TEST_DEFAULTS")


def stack_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SESSION_ONLY}


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class Stack:
    api: httpx.Client
    output: str  # what `make up` printed


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The stack `make up` starts (what already runs is reused, as `make up` itself does)."""
    running = all(port_open(p) for p in (8000, 3000, 8088))
    proc = subprocess.run(["bash", str(ROOT / "deploy" / "local" / "stack.sh"), "up"],
                          cwd=ROOT, env=stack_env(), capture_output=True, text=True,
                          timeout=1800)
    key = (HOME / "admin-api-key").read_text().strip()
    try:
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        with httpx.Client(base_url=API, headers={"X-API-Key": key}, timeout=30) as api:
            yield Stack(api, proc.stdout)
    finally:
        if not running:
            subprocess.run(["bash", str(ROOT / "deploy" / "local" / "stack.sh"), "stop-apps"],
                           cwd=ROOT, env=stack_env(), capture_output=True, timeout=600)


def test_make_up_ends_with_what_to_open_first(stack: Stack) -> None:
    summary = stack.output[stack.output.index("Open first"):]
    for url in (f"{SUPERSET}/superset/dashboard/live-alerts/",
                f"{SUPERSET}/superset/dashboard/fraud-overview/", f"{DAGSTER}/runs",
                f"{API}/docs"):
        assert url in summary, summary
    assert "superset-admin-password" in summary and "admin-api-key" in summary, summary
    found = re.search(r"first demo alert (\d+)s after make up started", summary)
    assert found, summary
    assert 0 <= int(found[1]) <= 300
    (demo,) = [p for p in stack.api.get("/api/pipelines").json() if p["name"] == DEMO]
    assert stack.api.get("/api/alerts", params={"pipeline_id": demo["id"], "limit": 1}).json()


def login(driver: Any) -> None:
    superset_login(driver, SUPERSET, (HOME / "superset-admin-password").read_text().strip())


RUNS_QUERY = """query($f: RunsFilter) { runsOrError(filter: $f, limit: 20) {
  ... on Runs { results { runId status startTime endTime tags { key value } } } } }"""


def succeeded_runs(job: str) -> list[dict]:
    r = httpx.post(f"{DAGSTER}/graphql", timeout=30, json={
        "query": RUNS_QUERY, "variables": {"f": {"pipelineName": job}}})
    return [x for x in r.json()["data"]["runsOrError"]["results"] if x["status"] == "SUCCESS"]


def provisioned_after_a_build() -> bool:
    builds, provisions = (succeeded_runs(j) for j in ("build_lakehouse_models",
                                                       "provision_superset"))
    # launched by the sensor superset_after_marts, not by hand
    provisions = [p for p in provisions
                  if {"key": "sentinel/trigger", "value": "marts_built"} in p["tags"]]
    return bool(builds and provisions and max(p["startTime"] for p in provisions)
                >= min(b["endTime"] for b in builds))


def test_fraud_overview_fills_after_the_first_build_without_a_manual_step(
        stack: Stack) -> None:
    wait_for("a dbt build, then Superset provisioned by Dagster", provisioned_after_a_build,
             1500, every=10)
    with headless_chromium(1600, 2200) as driver:
        login(driver)
        driver.get(f"{SUPERSET}/superset/dashboard/fraud-overview/?standalone=0")
        settled_charts(driver, at_least=6)
        driver.save_screenshot(str(artifact("make-up-fraud-overview.png")))
        state = driver.execute_script(CHART_STATE_JS)
    assert len(state) >= 6, state
    assert all(s["drawn"] > 0 and not s["empty"] and not s["error"] for s in state), state
