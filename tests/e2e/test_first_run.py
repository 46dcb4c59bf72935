"""A newcomer's first run, on the stack `make up` starts: quick start, live data, dashboards.

The stack (API, Dagster, Superset, demo) is reused when it already answers (a developer's
`make up`), else started here with ``deploy/local/stack.sh up`` and its apps stopped at the end
(``stack.sh stop-apps``; the shared services stay). Every subprocess gets the stack's own
settings, not the test session's database, Redis and warehouse.

- the README's quick start runs verbatim (its fenced block with ``make producer``) and the alert
  it prints belongs to the new pipeline and matches its rule, checked on the event itself;
- the demo's alerts carry event times within the last hour (wall-clock producer);
- "Live Alerts" (refreshing itself every 5 s) shows an event sent during the test within 15 s
  (headless Chromium);
- after the first dbt build, with no manual step, "Fraud Overview" shows >= 6 charts, each
  drawn with data.

Screenshots: ``.sentinel/test-artifacts/first-run-*.png`` (copies in ``docs/img/``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.browser import artifact, headless_chromium, superset_login

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
T = TypeVar("T")


def stack_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SESSION_ONLY}


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return True
    except OSError:
        return False


def wait_for(what: str, fn: Callable[[], T | None], timeout: float, every: float = 2.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(every)


@pytest.fixture(scope="module")
def stack() -> Iterator[httpx.Client]:
    """The API of the stack `make up` started (started here when it is not running)."""
    started = not all(port_open(p) for p in (8000, 3000, 8088))
    if started:
        proc = subprocess.run(["bash", str(ROOT / "deploy" / "local" / "stack.sh"), "up"],
                              cwd=ROOT, env=stack_env(), capture_output=True, text=True,
                              timeout=1800)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        assert "Open first" in proc.stdout and "/superset/dashboard/" in proc.stdout
    key = (HOME / "admin-api-key").read_text().strip()
    try:
        with httpx.Client(base_url=API, headers={"X-API-Key": key}, timeout=30) as api:
            yield api
    finally:
        if started:
            subprocess.run(["bash", str(ROOT / "deploy" / "local" / "stack.sh"), "stop-apps"],
                           cwd=ROOT, env=stack_env(), capture_output=True, timeout=600)


def readme_quick_start() -> str:
    """The README's fenced bash block that sends events with ``make producer``."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "make producer" in b]
    return block


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def retire_earlier_quick_start(api: httpx.Client, block: str) -> None:
    """On a reused stack the quick start's pipeline may exist from an earlier run: stop it and
    free its name and topic (the README creates them; a fresh stack has neither)."""
    body = json.loads(re.search(r"-d '(\{\"name\".*?\})'", block, re.S)[1])  # type: ignore[index]
    old = [p for p in api.get("/api/pipelines").json()
           if body["name"] == p["name"] or body["kafka_topic"] == p["kafka_topic"]]
    if not old:
        return
    from sqlalchemy import create_engine, text

    from catalog.settings import DEV_DATABASE_URL  # the stack's catalog (not the session's)

    suffix = uuid.uuid4().hex[:6]
    engine = create_engine(DEV_DATABASE_URL)
    with engine.begin() as conn:
        for p in old:
            conn.execute(text(
                "update pipelines set status = 'stopped', name = name || :n, "
                "kafka_topic = kafka_topic || :t where id = :id"),
                {"n": f" (retired {suffix})", "t": f"_retired_{suffix}", "id": p["id"]})
    engine.dispose()


def test_readme_quick_start_runs_verbatim_and_shows_its_alert(stack: httpx.Client) -> None:
    block = readme_quick_start()
    retire_earlier_quick_start(stack, block)
    demo = [p for p in stack.get("/api/pipelines").json() if p["name"] == DEMO]
    started = datetime.now(UTC)
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", block], cwd=ROOT, env=stack_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    pid = int(re.search(r"pipeline id: (\d+)", proc.stdout)[1])  # type: ignore[index]
    assert pid not in {p["id"] for p in demo}  # a second pipeline, not the demo's
    pipeline = stack.get(f"/api/pipelines/{pid}").raise_for_status().json()
    assert pipeline["name"] == "Card Payments" and pipeline["kafka_topic"] == "card_payments"
    rules = stack.get(f"/api/pipelines/{pid}/rules").json()
    assert [r["rule_expression"] for r in rules] == ["amount > 5000 AND currency <> 'USD'"]

    printed = json.loads(proc.stdout[proc.stdout.rindex("\n[") + 1:])
    assert printed, proc.stdout[-3000:]
    for alert in printed:
        event = alert["transaction_data"]
        assert alert["pipeline_id"] == pid and alert["rule_id"] == rules[0]["id"]
        assert alert["severity"] == "critical"
        assert event["amount"] > 5000 and event["currency"] != "USD"  # the rule, on the event
        # the producer dated the events by the wall clock (up to 5 minutes late)
        assert started - timedelta(minutes=6) <= parse_ts(alert["event_time"]) <= \
            datetime.now(UTC)
    # the newcomer's pipeline has shown what it should: pause its stream (the machine is small)
    stack.patch(f"/api/pipelines/{pid}/status", json={"status": "paused"}).raise_for_status()


def test_demo_alerts_are_dated_within_the_last_hour(stack: httpx.Client) -> None:
    (demo,) = [p for p in stack.get("/api/pipelines").json() if p["name"] == DEMO]
    alerts = wait_for("demo alerts", lambda: stack.get(
        "/api/alerts", params={"pipeline_id": demo["id"], "limit": 50}).json(), 300)
    now = datetime.now(UTC)
    assert all(now - timedelta(hours=1) <= parse_ts(a["event_time"]) <= now for a in alerts), \
        [a["event_time"] for a in alerts]


def login(driver: Any) -> None:
    superset_login(driver, SUPERSET, (HOME / "superset-admin-password").read_text().strip())


def send_event(api: httpx.Client, amount: float) -> str:
    """One well-formed event to the demo pipeline's topic; its (unique) transaction id."""
    from kafka import KafkaProducer

    (demo,) = [p for p in api.get("/api/pipelines").json() if p["name"] == DEMO]
    txn = f"live-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    event = {"transaction_id": txn, "user_id": 4242, "amount": amount, "currency": "USD",
             "timestamp": now}
    producer = KafkaProducer(bootstrap_servers=f"{HOST}:9092", acks="all")
    producer.send(demo["kafka_topic"], key=txn.encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()
    return txn


def test_live_alerts_shows_an_event_sent_now_within_15_s(stack: httpx.Client) -> None:
    """Sent -> stream -> Postgres -> dashboard (refreshing itself) in 15 s; the dashboard's own
    share (from the alert being raised to its row on screen) is checked on its own too, so a
    failure says which side was slow."""
    from selenium.webdriver.common.by import By

    with headless_chromium(1600, 1400) as driver:
        login(driver)
        driver.get(f"{SUPERSET}/superset/dashboard/live-alerts/?standalone=0")
        wait_for("the Latest alerts table", lambda: driver.find_elements(
            By.CSS_SELECTOR, "table tbody tr"), 120)
        txn = send_event(stack, 99_999.0)  # > 5000: the demo's critical rule
        sent = time.monotonic()
        raised = shown = None
        while time.monotonic() - sent < 120 and shown is None:
            if raised is None and stack.get(f"/api/transactions/{txn}/risk").json()["risky"]:
                raised = time.monotonic() - sent
            if txn in driver.page_source:
                shown = time.monotonic() - sent
            time.sleep(0.5)
        time.sleep(2)  # the charts' animations
        driver.save_screenshot(str(artifact("first-run-live-alerts.png")))
    risk = stack.get(f"/api/transactions/{txn}/risk").raise_for_status().json()
    assert risk["risky"] and risk["severity"] == "critical"  # the stream raised it
    raised = raised if raised is not None else shown
    assert shown is not None, f"{txn} not on the dashboard after 120 s (raised after {raised}s)"
    assert raised is not None and shown - raised <= 10, (raised, shown)  # refresh every 5 s
    assert shown <= 15, f"shown after {shown:.1f}s, of which the stream took {raised:.1f}s"


CHART_STATE_JS = """
return Array.from(document.querySelectorAll('[data-test="dashboard-component-chart-holder"]'))
  .map(h => ({
    name: ((h.querySelector('[data-test="editable-title"], .header-title') || {}).textContent
           || '').trim(),
    drawn: h.querySelectorAll('canvas, [_echarts_instance_] svg').length,
    empty: /No results/i.test(h.textContent),
    error: !!h.querySelector('.ant-alert-error, [data-test="error-message"]'),
  }));
"""

RUNS_QUERY = """query($f: RunsFilter) { runsOrError(filter: $f, limit: 20) {
  ... on Runs { results { runId status startTime endTime } } } }"""


def succeeded_runs(job: str) -> list[dict]:
    r = httpx.post(f"{DAGSTER}/graphql", timeout=30, json={
        "query": RUNS_QUERY, "variables": {"f": {"pipelineName": job}}})
    return [x for x in r.json()["data"]["runsOrError"]["results"] if x["status"] == "SUCCESS"]


def provisioned_after_a_build() -> bool:
    builds, provisions = (succeeded_runs(j) for j in ("build_lakehouse_models",
                                                       "provision_superset"))
    return bool(builds and provisions and max(p["startTime"] for p in provisions)
                >= min(b["endTime"] for b in builds))


def test_fraud_overview_fills_after_the_first_build_without_a_manual_step(
        stack: httpx.Client) -> None:
    wait_for("a dbt build, then Superset provisioned by Dagster", provisioned_after_a_build,
             1500, every=10)
    with headless_chromium(1600, 2200) as driver:
        login(driver)
        driver.get(f"{SUPERSET}/superset/dashboard/fraud-overview/?standalone=0")
        deadline, state = time.monotonic() + 240, []
        while time.monotonic() < deadline:
            state = driver.execute_script(CHART_STATE_JS)
            if len(state) >= 6 and all(s["drawn"] or s["error"] or s["empty"] for s in state):
                break
            time.sleep(2)
        time.sleep(3)  # the ECharts animations
        driver.save_screenshot(str(artifact("first-run-fraud-overview.png")))
        state = driver.execute_script(CHART_STATE_JS)
    assert len(state) >= 6, state
    assert all(s["drawn"] > 0 and not s["empty"] and not s["error"] for s in state), state
