"""A newcomer's first run, on the suite's own Superset, marts and catalog (no second stack).

The Superset suite's fixtures already started Superset, built the marts and provisioned the
dashboards ("Sentinel Alerts" on this session's catalog database). Beside them this module runs
what a newcomer's first minutes need, each started by the project's own scripts: a Kafka broker
of its own (``kafka.sh``, a free port: the shared broker's ``transactions`` and ``card_payments``
topics may hold another stack's events), the API (``api.sh``, a free port,
``SENTINEL_API_PORT``) and the demo (``stack.sh demo``: the "Payment Transactions" pipeline and
its wall-clock producer), plus the demo's stream (``python -m streaming.job``, standing in for
Dagster's ``pipeline_watcher``, which ``tests/e2e/test_orch_e2e.py`` checks). The key in
``.sentinel/admin-api-key`` is an admin key of this catalog too, so the README's commands run
as written.

- "Fraud Overview" has every chart before the first dbt build (placeholders, "No results"),
  and after a build Dagster's ``superset_after_marts`` asks for ``provision_superset``, whose
  asset fills each chart with data: no manual step (headless Chromium);
- the demo's alerts carry event times within the last hour (wall-clock producer);
- "Live Alerts" (refreshing itself every 5 s) shows an event sent during the test within 15 s;
- the README's quick start runs verbatim (its fenced block with ``make producer``) and the
  alert it prints belongs to the new pipeline and matches its rule, checked on the event.

What only ``make up`` itself can show (its summary, Dagster's daemon on the stack's instance)
stays in ``tests/e2e/test_make_up.py`` (``make test-first-run``).
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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from catalog.api_keys import authenticate, hash_key
from catalog.db import get_engine
from catalog.tables import api_keys
from tests.browser import (
    CHART_STATE_JS,
    artifact,
    headless_chromium,
    settled_charts,
    superset_login,
)
from tests.integration.streaming.conftest import TEST_JAVA_OPTIONS, JobProcess
from tests.integration.superset.conftest import HOME, ROOT, Provisioned, provision
from tests.integration.superset.test_superset import FRAUD_CHARTS, MARTS, chart_rows
from tests.support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

LOCAL = ROOT / "deploy" / "local"
HOST = "127.0.0.1"
DEMO = "Payment Transactions"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def script(env: dict[str, str], *commands: str, timeout: int = 300) -> str:
    """``deploy/local`` shell functions (``lib.sh`` and the named scripts sourced) with ``env``."""
    sources = " ".join(f'. "{LOCAL}/{c}.sh";' for c in ("lib", *commands[:-1]))
    proc = subprocess.run(["bash", "-c", f"set -euo pipefail; {sources} {commands[-1]}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{commands[-1]}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def admin_key_of_this_catalog() -> str:
    """The README reads ``.sentinel/admin-api-key`` (written by ``make services``/``make up``
    into the stack's catalog): the same key is made an admin key of this session's catalog."""
    path = HOME / "admin-api-key"
    assert path.exists(), f"{path} missing: run `make services` first"
    key = path.read_text().strip()
    with get_engine().begin() as conn:
        if authenticate(conn, key=key) is None:
            conn.execute(insert(api_keys).values(
                name=f"readme-admin-{uuid.uuid4().hex[:6]}", prefix=key.split("_")[1],
                key_hash=hash_key(key), role="admin"))
    return key


def start_stream(env: dict[str, str], logs: Path, pipeline_id: int) -> JobProcess:
    """The pipeline's stream (what Dagster's ``pipeline_watcher`` starts on the stack)."""
    job = JobProcess(pipeline_id, {**env, "JAVA_TOOL_OPTIONS": TEST_JAVA_OPTIONS},
                     logs / f"stream-{pipeline_id}.log")
    job.start()
    return job


@dataclass
class FirstRun:
    api: httpx.Client
    env: dict[str, str]  # the processes' environment (this catalog, Redis, Kafka and API)
    kafka: str
    demo_id: int
    demo_job: JobProcess
    logs: Path


@pytest.fixture(scope="module")
def first_run(provisioned: Provisioned,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    root = tmp_path_factory.mktemp("first-run")
    home = root / "home"  # the scripts' SENTINEL_HOME: pid files, logs, the broker's data
    home.mkdir()
    (home / "jars").symlink_to(HOME / "jars")
    key = admin_key_of_this_catalog()
    (home / "admin-api-key").write_text(key)
    (home / "admin-api-key").chmod(0o600)
    kafka_port, api_port = free_port(), free_port()
    kafka = f"{HOST}:{kafka_port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SENTINEL_KAFKA_BOOTSTRAP_SERVERS": kafka,
           "SENTINEL_API_PORT": str(api_port), "SENTINEL_WAREHOUSE": str(root / "warehouse")}
    scripts = {**env, "SENTINEL_HOME": str(home), "SENTINEL_KAFKA_PORT": str(kafka_port),
               "SENTINEL_KAFKA_CONTROLLER_PORT": str(free_port()),
               "SENTINEL_KAFKA_HEAP": "-Xmx384m -Xms128m"}
    jobs: list[JobProcess] = []
    try:
        script(scripts, "kafka", "start_kafka", timeout=240)
        script(scripts, "api", "start_api", timeout=120)
        out = subprocess.run(["bash", str(LOCAL / "stack.sh"), "demo"], cwd=ROOT, env=scripts,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0 and "demo producer started" in out.stdout, \
            out.stdout[-3000:] + out.stderr[-3000:]
        demo_id = int(re.search(r"active \(id (\d+)", out.stdout)[1])  # type: ignore[index]
        jobs.append(start_stream(env, root, demo_id))
        with httpx.Client(base_url=f"http://{HOST}:{api_port}", headers={"X-API-Key": key},
                          timeout=30) as api:
            yield FirstRun(api, env, kafka, demo_id, jobs[0], root)
    finally:
        subprocess.run(["bash", str(LOCAL / "stack.sh"), "demo-stop"], cwd=ROOT, env=scripts,
                       capture_output=True, timeout=120)
        for job in jobs:
            job.stop()
        script(scripts, "api", "stop_api", timeout=120)
        script(scripts, "kafka", "stop_kafka", timeout=120)


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def login(driver: Any, provisioned: Provisioned) -> None:
    superset_login(driver, provisioned.api.url,
                   (HOME / "superset-admin-password").read_text().strip())


def fraud_overview(provisioned: Provisioned, shot: str) -> list[dict]:
    """Each Fraud Overview chart as drawn in the browser, once all have settled."""
    url = provisioned.api.url
    with headless_chromium(1600, 2200) as driver:
        login(driver, provisioned)
        driver.get(f"{url}/superset/dashboard/fraud-overview/?standalone=0")
        settled_charts(driver, at_least=6)
        driver.save_screenshot(str(artifact(shot)))
        artifact(shot.replace(".png", ".html")).write_text(driver.page_source)
        return list(driver.execute_script(CHART_STATE_JS))


def test_fraud_overview_has_every_chart_before_the_first_build_and_fills_after_it_by_itself(
        provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import (
        AssetMaterialization,
        DagsterInstance,
        RunRequest,
        build_sensor_context,
        materialize,
    )

    from orchestration.superset.assets import MART_KEYS, superset_dashboards
    from orchestration.superset.resources import SupersetResource
    from orchestration.superset.sensors import superset_after_marts

    api, lake, t0 = provisioned.api, provisioned.lake, time.monotonic()
    # what `make up` provisions before dbt has built anything (a prefix with no gold schema):
    # the same datasets, as placeholders, and every chart answering with no rows, not an error
    unbuilt = f"{lake.prefix}first_run_"
    before = provision({**provisioned.env, "SENTINEL_LAKEHOUSE_SCHEMA_PREFIX": unbuilt})
    assert sorted(before["missing"]) == sorted(f"{unbuilt}gold.{m}".lower() for m in MARTS)
    assert before["datasets"] == provisioned.runs[0]["datasets"]
    for name in FRAUD_CHARTS:
        assert chart_rows(api, name) == [], name
    print(f"[{time.monotonic() - t0:5.0f}s] provisioned before the first build")
    state = fraud_overview(provisioned, "first-run-fraud-overview-before-build.png")
    assert {s["name"] for s in state} == FRAUD_CHARTS, state
    assert all(s["empty"] and not s["error"] for s in state), state
    print(f"[{time.monotonic() - t0:5.0f}s] every chart shown, each with no results")

    # the first build has materialized the marts (the suite's dbt run over ``lake.prefix``):
    # Dagster's sensor asks for the provisioning job by itself, and its asset runs it
    for key in ("SENTINEL_LAKEHOUSE_SCHEMA_PREFIX", "SENTINEL_THRIFT_HOST",
                "SENTINEL_THRIFT_PORT"):
        monkeypatch.setenv(key, provisioned.env[key])
    superset = SupersetResource(url=api.url)
    with DagsterInstance.ephemeral() as instance:
        for key in MART_KEYS:
            instance.report_runless_asset_event(AssetMaterialization(key))
        tick = superset_after_marts(build_sensor_context(
            instance=instance, resources={"superset": superset}))
        assert isinstance(tick, RunRequest), tick
        result = materialize([superset_dashboards], instance=instance,
                             resources={"superset": superset}, tags=tick.tags)
        assert result.success
        (done,) = result.asset_materializations_for_node("superset_dashboards")
        assert done.metadata["placeholders"].value == []  # every mart's table swapped in
    print(f"[{time.monotonic() - t0:5.0f}s] provisioned by Dagster after the build")
    state = fraud_overview(provisioned, "first-run-fraud-overview.png")
    assert {s["name"] for s in state} == FRAUD_CHARTS, state
    assert all(s["drawn"] > 0 and not s["empty"] and not s["error"] for s in state), state
    assert artifact("first-run-fraud-overview.png").stat().st_size > 50_000
    print(f"[{time.monotonic() - t0:5.0f}s] every chart drawn with data")


def test_demo_alerts_are_dated_within_the_last_hour(first_run: FirstRun) -> None:
    api = first_run.api
    alerts = wait_for("demo alerts", lambda: api.get(
        "/api/alerts", params={"pipeline_id": first_run.demo_id, "limit": 50}).json(), 300)
    now = datetime.now(UTC)
    assert all(now - timedelta(hours=1) <= parse_ts(a["event_time"]) <= now for a in alerts), \
        [a["event_time"] for a in alerts]


def send_event(first_run: FirstRun, amount: float) -> str:
    """One well-formed event to the demo pipeline's topic; its (unique) transaction id."""
    from kafka import KafkaProducer

    topic = first_run.api.get(f"/api/pipelines/{first_run.demo_id}").json()["kafka_topic"]
    txn = f"live-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    event = {"transaction_id": txn, "user_id": 4242, "amount": amount, "currency": "USD",
             "timestamp": now}
    producer = KafkaProducer(bootstrap_servers=first_run.kafka, acks="all")
    producer.send(topic, key=txn.encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()
    return txn


def test_live_alerts_shows_an_event_sent_now_within_15_s(first_run: FirstRun,
                                                          provisioned: Provisioned) -> None:
    """Sent -> stream -> Postgres -> dashboard (refreshing itself) in 15 s; the dashboard's own
    share (from the alert being raised to its row on screen) is checked on its own too, so a
    failure says which side was slow."""
    from selenium.webdriver.common.by import By

    api = first_run.api
    wait_for("the demo's stream", lambda: api.get(
        "/api/alerts", params={"pipeline_id": first_run.demo_id, "limit": 1}).json(), 300)
    with headless_chromium(1600, 1400) as driver:
        login(driver, provisioned)
        driver.get(f"{provisioned.api.url}/superset/dashboard/live-alerts/?standalone=0")
        wait_for("the Latest alerts table", lambda: driver.find_elements(
            By.CSS_SELECTOR, "table tbody tr"), 120)
        txn = send_event(first_run, 99_999.0)  # > 5000: the demo's critical rule
        sent = time.monotonic()
        raised = shown = None
        while time.monotonic() - sent < 120 and shown is None:
            if raised is None and api.get(f"/api/transactions/{txn}/risk").json()["risky"]:
                raised = time.monotonic() - sent
            if txn in driver.page_source:
                shown = time.monotonic() - sent
            time.sleep(0.5)
        time.sleep(2)  # the charts' animations
        driver.save_screenshot(str(artifact("first-run-live-alerts.png")))
    risk = api.get(f"/api/transactions/{txn}/risk").raise_for_status().json()
    assert risk["risky"] and risk["severity"] == "critical"  # the stream raised it
    raised = raised if raised is not None else shown
    assert shown is not None, f"{txn} not on the dashboard after 120 s (raised after {raised}s)"
    assert raised is not None and shown - raised <= 10, (raised, shown)  # refresh every 5 s
    assert shown <= 15, f"shown after {shown:.1f}s, of which the stream took {raised:.1f}s"


def readme_quick_start() -> str:
    """The README's fenced bash block that sends events with ``make producer``."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "make producer" in b]
    return block


def test_readme_quick_start_runs_verbatim_and_shows_its_alert(first_run: FirstRun) -> None:
    """The block runs as written; when it prints the new pipeline's id, that pipeline's stream
    is started here (on the stack, Dagster's ``pipeline_watcher`` does it within ~15 s)."""
    api = first_run.api
    first_run.demo_job.stop()  # the demo has shown what it should (two cores)
    started = datetime.now(UTC)
    log = first_run.logs / "quick-start.stderr"
    with log.open("w") as err:
        proc = subprocess.Popen(["bash", "-eo", "pipefail", "-c", readme_quick_start()],
                                cwd=ROOT, env=first_run.env, stdout=subprocess.PIPE,
                                stderr=err, text=True)
        out, job = [], None
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.append(line)
                found = re.match(r"pipeline id: (\d+)$", line.strip())
                if found and job is None:
                    job = start_stream(first_run.env, first_run.logs, int(found[1]))
            assert proc.wait(timeout=600) == 0, "".join(out)[-4000:] + log.read_text()[-4000:]
        finally:
            if proc.poll() is None:
                proc.kill()
            if job is not None:
                job.stop()
    stdout = "".join(out)
    pid = int(re.search(r"pipeline id: (\d+)", stdout)[1])  # type: ignore[index]
    assert pid != first_run.demo_id  # a second pipeline, not the demo's
    pipeline = api.get(f"/api/pipelines/{pid}").raise_for_status().json()
    assert pipeline["name"] == "Card Payments" and pipeline["kafka_topic"] == "card_payments"
    rules = api.get(f"/api/pipelines/{pid}/rules").json()
    assert [r["rule_expression"] for r in rules] == ["amount > 5000 AND currency <> 'USD'"]

    printed = json.loads(stdout[stdout.rindex("\n[") + 1:])
    assert printed, stdout[-3000:]
    for alert in printed:
        event = alert["transaction_data"]
        assert alert["pipeline_id"] == pid and alert["rule_id"] == rules[0]["id"]
        assert alert["severity"] == "critical"
        assert event["amount"] > 5000 and event["currency"] != "USD"  # the rule, on the event
        # the producer dated the events by the wall clock (up to 5 minutes late)
        assert started - timedelta(minutes=6) <= parse_ts(alert["event_time"]) <= \
            datetime.now(UTC)
