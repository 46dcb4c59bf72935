"""The whole loop with the real daemon, in one private ``dagster dev``.

Pipeline A (one rule) is created through the API and streams by itself; pause ends its run,
events sent while paused are picked up by the new run that resume starts; a schema change
(a new nullable field) restarts the run on the new version and the field lands in bronze; a
SIGKILL of the streaming process group is relaunched by the watcher. After catch-up, bronze,
quarantine and alerts hold every generated event exactly once, as computed here in plain
Python. Pipeline B has a corrupt checkpoint: it fails at every start, is relaunched with
backoff up to the cap, then shows as failing (API health, Dagster runs, sensor). Last, headless
Chromium shows the runs and a run's batch progress in Dagster's UI.

Needs the services of ``make services`` (Postgres, Kafka, Redis, Chromium).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)

from catalog.settings import get_settings
from orchestration.streams.jobs import PIPELINE_TAG, SCHEMA_TAG
from streaming.producer import GeneratedEvent, generate_events, send
from tests.e2e.orch_kit import (
    TUNING,
    DagsterDev,
    alert_event_ids,
    dagster_dev,
    process_group,
    read_delta,
    stream_process,
    stream_rows,
    wait_for,
)
from tests.support import auth

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "float", "nullable": False},
    {"name": "currency", "type": "string", "nullable": False},
]
SCHEMA_V2 = [*SCHEMA, {"name": "channel", "type": "string", "nullable": True}]
RULE = "amount > 5000 AND currency <> 'USD'"
MAX_ATTEMPTS = int(TUNING["SENTINEL_STREAM_MAX_ATTEMPTS"])
SLOW = 900  # seconds: a bound for waits on Spark work, generous for a loaded 2-core machine
STATE: dict[str, object] = {}  # what the UI test shows: the lifecycle's live run


def matches_rule(event: dict) -> bool:
    """RULE, in Python."""
    return event["amount"] > 5000 and event["currency"] != "USD"


@pytest.fixture(scope="module")
def dagster(tmp_path_factory, catalog_db) -> Iterator[DagsterDev]:
    uid = uuid.uuid4().hex[:8]
    with dagster_dev(tmp_path_factory.mktemp(f"e2e-{uid}"), uid) as dev:
        yield dev


@pytest.fixture(scope="module")
def instance(dagster) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_config(str(dagster.home)) as inst:
        yield inst


def runs_of(instance: DagsterInstance, pipeline_id: int) -> list:
    """The pipeline's ``stream_pipeline`` run records, oldest first."""
    records = instance.get_run_records(RunsFilter(job_name="stream_pipeline",
                                                  tags={PIPELINE_TAG: str(pipeline_id)}))
    return sorted(records, key=lambda r: r.create_timestamp)


def failure_text(instance: DagsterInstance, run_id: str) -> str:
    """What Dagster shows for a failed run: failure messages and the step's error."""
    events = instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE,
                                                DagsterEventType.RUN_FAILURE})
    texts = []
    for entry in events:
        event = entry.dagster_event
        if event is None:
            continue
        texts.append(event.message or "")
        if event.is_step_failure and event.step_failure_data.error:
            texts.append(event.step_failure_data.error.message)
    return "\n".join(texts)


def create_pipeline(client, admin: dict, name: str, status: str = "active") -> int:
    created = client.post("/api/pipelines", headers=admin, json={
        "name": name, "kafka_topic": name, "schema": SCHEMA, "key_field": "transaction_id",
        "status": status})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


@pytest.fixture(scope="module")
def doomed(dagster, client, api_keys) -> int:
    """Pipeline B: its checkpoint's metadata file is truncated, so every start fails.

    Created paused, broken, then set active; requested by the first test so that its
    attempts overlap the lifecycle scenario.
    """
    admin = auth(api_keys["admin"])
    pid = create_pipeline(client, admin, f"e2e-{dagster.uid}-doomed", status="paused")
    checkpoint = dagster.warehouse / "_checkpoints" / f"pipeline_{pid}" / "archive"
    checkpoint.mkdir(parents=True)
    (checkpoint / "metadata").write_text('{"id":"4f3c')  # cut off mid-write
    assert client.patch(f"/api/pipelines/{pid}/status", headers=admin,
                        json={"status": "active"}).status_code == 200
    return pid


class Sent:
    """Every record sent to pipeline A, and what the lake must hold because of it."""

    def __init__(self, topic: str, uid: str) -> None:
        self.topic, self.uid = topic, uid
        self.events: list[tuple[GeneratedEvent, bool]] = []  # (record, carries schema v2)

    def send(self, schema: list[dict], n: int, seed: int) -> None:
        batch = generate_events(schema, n, seed=seed, key_field="transaction_id",
                                id_prefix=self.uid, anomaly_share=0.3, malformed_share=0.1)
        send(batch, self.topic, get_settings().kafka_bootstrap_servers)
        self.events += [(e, schema is SCHEMA_V2) for e in batch]

    @property
    def valid(self) -> list[tuple[dict, bool]]:
        return [(e.event, v2) for e, v2 in self.events if e.event is not None]

    @property
    def malformed(self) -> Counter:
        return Counter(e.value for e, _ in self.events if e.malformed is not None)

    @property
    def alerts(self) -> Counter:
        return Counter(e["transaction_id"] for e, _ in self.valid if matches_rule(e))


def caught_up(dev: DagsterDev, pid: int, sent: Sent, alerts: bool = False):
    """Bronze and quarantine hold as many rows as sent (and Postgres and silver every alert:
    silver follows the alerts topic, so it can be one archive batch behind Postgres)."""
    bronze = read_delta(dev.table("bronze", pid, "events"), ["_event_id"])
    quarantine = read_delta(dev.table("bronze", pid, "quarantine"), ["raw_value"])
    n_alerts = sum(sent.alerts.values()) if alerts else 0
    silver = read_delta(dev.table("silver", pid, "alerts"), ["event_id"]) if alerts else []
    counts = (len(bronze), len(quarantine), len(alert_event_ids(pid)) if alerts else 0,
              len(silver))
    wanted = (len(sent.valid), sum(sent.malformed.values()), n_alerts, n_alerts)
    assert all(c <= w for c, w in zip(counts, wanted, strict=True)), (counts, wanted)
    return counts == wanted


def new_stream_row(pid: int, known: set[str]):
    """The first ``stream_runs`` row of a Dagster run not in ``known``."""
    return next((r for r in stream_rows(pid) if r.dagster_run_id and
                 r.dagster_run_id not in known), None)


def row_of(pid: int, run_id: str):
    return next(r for r in stream_rows(pid) if r.dagster_run_id == run_id)


def ended(instance: DagsterInstance, run_id: str, statuses: set) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and run.status in statuses


def test_stream_lifecycle_pause_resume_schema_change_and_crash(
        dagster, instance, doomed, client, api_keys):
    admin = auth(api_keys["admin"])
    name = f"e2e-{dagster.uid}-payments"
    pid = create_pipeline(client, admin, name)
    rule = client.post(f"/api/pipelines/{pid}/rules", headers=admin, json={
        "rule_expression": RULE, "severity": "critical", "description": "large foreign"})
    assert rule.status_code == 201, rule.text
    sent = Sent(name, dagster.uid)
    sent.send(SCHEMA, 60, seed=1)
    t0 = time.monotonic()

    # 1. the stream starts by itself and every valid event reaches bronze
    row = wait_for("a stream_runs row from a Dagster run", lambda: new_stream_row(pid, set()), SLOW)
    run1 = row.dagster_run_id
    print(f"stream started by the watcher after {time.monotonic() - t0:.0f}s")
    wait_for("batch 1 in bronze and quarantine", lambda: caught_up(dagster, pid, sent), SLOW)

    # 2. pause ends the run
    assert client.patch(f"/api/pipelines/{pid}/status", headers=admin,
                        json={"status": "paused"}).status_code == 200
    row = wait_for("the stream to stop", lambda: (r := row_of(pid, run1)).ended_at and r, SLOW)
    assert row.status == "stopped"
    wait_for("the Dagster run to end", lambda: ended(
        instance, run1, {DagsterRunStatus.CANCELED, DagsterRunStatus.SUCCESS}), SLOW)

    # 3. events sent while paused wait in Kafka; nothing is started meanwhile
    sent.send(SCHEMA, 40, seed=2)
    time.sleep(2 * int(TUNING["SENTINEL_WATCHER_INTERVAL_SECONDS"]) + 1)
    assert [r.dagster_run_id for r in stream_rows(pid)] == [run1]
    assert [r.dagster_run.run_id for r in runs_of(instance, pid)] == [run1]

    # 4. resume: a NEW run continues from the checkpoint
    assert client.patch(f"/api/pipelines/{pid}/status", headers=admin,
                        json={"status": "active"}).status_code == 200
    run2 = wait_for("a new run after resume", lambda: new_stream_row(pid, {run1}), SLOW)
    run2 = run2.dagster_run_id
    sent.send(SCHEMA, 40, seed=3)
    wait_for("batches 1-3 in bronze", lambda: caught_up(dagster, pid, sent, alerts=True), SLOW)
    ids = [r["_event_id"] for r in read_delta(dagster.table("bronze", pid, "events"),
                                              ["_event_id"])]
    assert Counter(ids) == Counter(e["transaction_id"] for e, _ in sent.valid)

    # 5. schema change: the watcher restarts the stream on version 2
    put = client.put(f"/api/pipelines/{pid}/schema", headers=admin, json={"schema": SCHEMA_V2})
    assert put.status_code == 200 and put.json()["schema_version"] == 2, put.text
    row = wait_for("a run on schema version 2", lambda: new_stream_row(pid, {run1, run2}), SLOW)
    run3 = row.dagster_run_id
    assert row.schema_version == 2
    assert instance.get_run_by_id(run3).tags[SCHEMA_TAG] == "2"
    assert instance.get_run_by_id(run2).tags[SCHEMA_TAG] == "1"
    old = row_of(pid, run2)
    assert old.ended_at is not None and old.status == "stopped" and old.started_at < row.started_at
    sent.send(SCHEMA_V2, 60, seed=4)  # sent once the v2 stream runs: v1 would drop `channel`
    wait_for("batch 4 in bronze", lambda: caught_up(dagster, pid, sent, alerts=True), SLOW)

    # 6. SIGKILL the streaming process group (Python driver + JVM) in the middle of a burst
    before = row_of(pid, run3).input_rows
    sent.send(SCHEMA_V2, 500, seed=5)
    wait_for("the burst to be under way",
             lambda: row_of(pid, run3).input_rows > before, SLOW, every=0.2)
    victim = stream_process(run3)
    assert victim is not None, "no streaming.job process for the live run"
    group = process_group(os.getpgid(victim))
    assert any("java" in cmd for cmd in group.values()), group
    os.killpg(os.getpgid(victim), signal.SIGKILL)
    processed_at_kill = row_of(pid, run3).input_rows
    wait_for("the killed group to be gone", lambda: not process_group(victim), 60, every=0.5)
    assert processed_at_kill < before + 500, "killed too late: the burst was already done"
    print(f"killed pid {victim} (+{len(group) - 1}) at {processed_at_kill - before}/500 of burst")

    row = wait_for("the watcher to relaunch the stream",
                   lambda: new_stream_row(pid, {run1, run2, run3}), SLOW)
    run4 = row.dagster_run_id
    wait_for("catch-up after the crash", lambda: caught_up(dagster, pid, sent, alerts=True), SLOW)

    # Dagster and the catalog tell the crash as it was
    dead = instance.get_run_by_id(run3)
    assert dead.status == DagsterRunStatus.FAILURE
    assert "SIGKILL" in failure_text(instance, run3)
    crashed = row_of(pid, run3)
    assert crashed.status == "failed" and crashed.ended_at and "SIGKILL" in crashed.last_error
    relaunched = instance.get_run_by_id(run4)
    assert int(relaunched.tags["sentinel/attempt"]) >= 2 and relaunched.tags[SCHEMA_TAG] == "2"
    streamed = [r.dagster_run.run_id for r in runs_of(instance, pid)
                if r.dagster_run.run_id in {run1, run2, run3, run4}]
    assert streamed == [run1, run2, run3, run4]
    others = [r for r in runs_of(instance, pid) if r.dagster_run.run_id not in streamed]
    # a run the launcher could not start (a loaded machine) is a failure the watcher retried
    assert all(r.dagster_run.status == DagsterRunStatus.FAILURE for r in others), others
    health = client.get(f"/api/pipelines/{pid}/health", headers=admin).json()
    assert health["state"] == "running" and health["run"]["dagster_run_id"] == run4

    # exactly once everywhere, against the generated events
    bronze = read_delta(dagster.table("bronze", pid, "events"), ["_event_id", "channel"])
    assert Counter(r["_event_id"] for r in bronze) == Counter(
        e["transaction_id"] for e, _ in sent.valid)
    channel = {r["_event_id"]: r["channel"] for r in bronze}
    for e, v2 in sent.valid:  # v2 rows carry the new field; rows written before have NULL
        assert channel[e["transaction_id"]] == (e.get("channel") if v2 else None), e
    assert sum(1 for e, v2 in sent.valid if v2 and e.get("channel")) > 0
    quarantine = read_delta(dagster.table("bronze", pid, "quarantine"), ["raw_value"])
    assert Counter(r["raw_value"] for r in quarantine) == sent.malformed
    assert Counter(alert_event_ids(pid)) == sent.alerts and sent.alerts
    silver = read_delta(dagster.table("silver", pid, "alerts"), ["event_id"])
    assert Counter(r["event_id"] for r in silver) == sent.alerts
    STATE.update(pipeline_id=pid, run_id=run4, runs=[run1, run2, run3, run4])


def test_pipeline_that_always_fails_stops_at_the_cap_and_shows_why(
        dagster, instance, doomed, client, api_keys):
    pid, admin = doomed, auth(api_keys["admin"])

    def failing():
        health = client.get(f"/api/pipelines/{pid}/health", headers=admin).json()
        return health["state"] == "failing" and health

    health = wait_for("the pipeline to be marked failing", failing, 2 * SLOW, every=3)
    error = health["run"]["last_error"]
    assert error.startswith(f"gave up after {MAX_ATTEMPTS} failed attempts: "), error
    assert health["pipeline_status"] == "active"

    runs = runs_of(instance, pid)
    assert [r.dagster_run.status for r in runs] == [DagsterRunStatus.FAILURE] * MAX_ATTEMPTS
    assert [r.dagster_run.tags["sentinel/attempt"] for r in runs] == [
        str(i) for i in range(1, MAX_ATTEMPTS + 1)]
    # Every attempt whose stream started died on the truncated checkpoint metadata (an attempt
    # the launcher could not even start, as on a badly overloaded machine, fails with that).
    started = {r.dagster_run_id for r in stream_rows(pid)}
    assert started & {r.dagster_run.run_id for r in runs}, "no attempt reached the checkpoint"
    for r in runs:
        if r.dagster_run.run_id in started:
            assert "JsonEOFException" in failure_text(instance, r.dagster_run.run_id)
    if runs[-1].dagster_run.run_id in started:  # the last error is the one shown
        assert "JsonEOFException" in error.splitlines()[0], error
    base = float(TUNING["SENTINEL_STREAM_BACKOFF_SECONDS"])
    cap = float(TUNING["SENTINEL_STREAM_BACKOFF_MAX_SECONDS"])
    for n, (prev, nxt) in enumerate(zip(runs, runs[1:], strict=False), start=1):
        gap = nxt.create_timestamp.timestamp() - prev.end_time
        assert gap >= min(base * 2 ** (n - 1), cap) - 0.5, (n, gap)

    # the watcher keeps saying why, and launches nothing more
    (state,) = [s for s in instance.all_instigator_state()
                if s.instigator_name == "pipeline_watcher"]
    marked = runs[-1].end_time

    def ticks_since_marked() -> list:
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=marked)
        return [t for t in ticks if f"pipeline {pid}: FAILING after {MAX_ATTEMPTS} attempts"
                in (t.skip_reason or "")]

    def two_ticks() -> list | None:
        ticks = ticks_since_marked()
        return ticks if len(ticks) >= 2 else None

    ticks = wait_for("two ticks that report the failure", two_ticks, 120, every=3)
    assert error.splitlines()[0].split(": ", 1)[1][:100] in ticks[0].skip_reason
    assert len(runs_of(instance, pid)) == MAX_ATTEMPTS
    observed = instance.fetch_observations(AssetKey("bronze_events"), limit=200).records
    states = [o.asset_observation.metadata for o in observed
              if o.partition_key == str(pid) and o.asset_observation]
    assert any(m.get("stream_state") and m["stream_state"].value == "failing" for m in states)
    STATE["doomed_runs"] = [r.dagster_run.run_id for r in runs]
    print(f"gave up at {datetime.now(UTC):%H:%M:%S} after {MAX_ATTEMPTS} attempts")


def _page_text(browser) -> str:
    """The rendered text, once Dagster's first-visit newsletter dialog is out of the way."""
    from selenium.webdriver.common.by import By

    for skip in browser.find_elements(By.XPATH, "//button[.//span[text()='Skip']]"):
        skip.click()
    return str(browser.find_element(By.TAG_NAME, "body").text)


def test_dagster_ui_shows_every_pipelines_run_with_its_batch_progress(dagster, instance):
    """Headless Chromium: the runs list holds both pipelines' runs, a run page its batches."""
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import artifact, headless_chromium

    assert STATE.get("run_id"), "run the whole module: the lifecycle test makes the runs shown"
    pid, live = STATE["pipeline_id"], str(STATE["run_id"])
    shown = [*STATE["runs"], *STATE.get("doomed_runs", [])]  # type: ignore[misc]
    with headless_chromium(1600, 1300) as browser:
        browser.get(f"{dagster.url}/runs")
        text = WebDriverWait(browser, 90, 1).until(
            lambda d: (t := _page_text(d)) and all(r[:8] in t for r in shown) and t)
        assert f"{PIPELINE_TAG}: {pid}" in text and f"{SCHEMA_TAG}: 2" in text
        browser.save_screenshot(str(artifact("dagster-runs.png")))

        browser.get(f"{dagster.url}/runs/{live}")
        text = WebDriverWait(browser, 90, 1).until(
            lambda d: (t := _page_text(d)) and f"pipeline {pid} batch" in t and t)
        assert "input_rows=" in text and live[:8] in text
        browser.save_screenshot(str(artifact("dagster-run-progress.png")))
