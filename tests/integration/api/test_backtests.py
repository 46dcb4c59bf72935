"""Backtests and look-backs through the API: validated like rules, queued (202 + poll URL),
readable by viewers, 404 for what does not exist; the API never loads Spark."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from catalog.db import get_engine
from catalog.tables import backtests, rules
from tests.support import auth

pytestmark = pytest.mark.integration

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "currency", "type": "string", "nullable": True},
    {"name": "event_time", "type": "timestamp", "nullable": False},
]
RANGE = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-08T00:00:00+00:00"}


@pytest.fixture
def pipeline(client: TestClient, api_keys: dict[str, str], unique: str) -> int:
    resp = client.post(
        "/api/pipelines",
        json={"name": f"bt {unique}", "kafka_topic": f"bt_{unique}", "schema": SCHEMA},
        headers=auth(api_keys["admin"]),
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def queued_count() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(backtests)).scalar_one())


def test_backtest_is_queued_with_a_poll_url_and_readable_by_viewers(client, api_keys, pipeline):
    body = {"rule_expression": "amount > 5000 AND currency <> 'USD'", **RANGE,
            "sample_size": 5}
    resp = client.post(f"/api/pipelines/{pipeline}/rules/backtest", json=body,
                       headers=auth(api_keys["analyst"]))
    assert resp.status_code == 202, resp.text
    queued = resp.json()
    url = f"/api/pipelines/{pipeline}/rules/backtests/{queued['id']}"
    assert queued == {"id": queued["id"], "status": "queued", "poll_url": url}
    assert resp.headers["location"] == url

    got = client.get(url, headers=auth(api_keys["viewer"]))
    assert got.status_code == 200, got.text
    job = got.json()
    assert job["status"] == "queued" and job["kind"] == "backtest"
    assert job["rule_expression"] == body["rule_expression"]
    assert datetime.fromisoformat(job["since"]) == datetime(2026, 11, 1, tzinfo=UTC)
    assert datetime.fromisoformat(job["until"]) == datetime(2026, 11, 8, tzinfo=UTC)
    assert job["sample_size"] == 5 and job["results"] is None and job["delta_version"] is None
    assert job["requested_by"].startswith("test-analyst-")
    listed = client.get(f"/api/pipelines/{pipeline}/rules/backtests",
                        headers=auth(api_keys["viewer"]))
    assert [j["id"] for j in listed.json()] == [queued["id"]]


def test_naive_times_are_utc_and_admins_may_backtest(client, api_keys, pipeline):
    body = {"rule_expression": "amount > 1", "since": "2026-11-01T10:00:00",
            "until": "2026-11-01T11:30:00"}
    resp = client.post(f"/api/pipelines/{pipeline}/rules/backtest", json=body,
                       headers=auth(api_keys["admin"]))
    assert resp.status_code == 202, resp.text
    job = client.get(resp.json()["poll_url"], headers=auth(api_keys["viewer"])).json()
    assert datetime.fromisoformat(job["since"]) == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert job["sample_size"] == 20


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("amount >>> 5", ">"),
        ("no_such_column > 1", "no_such_column"),
        ("amount > (SELECT 1)", "subqueries"),
        ("reflect('java.lang.Runtime', 'getRuntime')", "reflect"),
        ("amount + 1", "true or false"),
    ],
)
def test_malformed_rule_is_422_with_what_and_where_and_nothing_queued(
    client, api_keys, pipeline, expression, says
):
    before = queued_count()
    resp = client.post(f"/api/pipelines/{pipeline}/rules/backtest",
                       json={"rule_expression": expression, **RANGE},
                       headers=auth(api_keys["analyst"]))
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"][0]
    assert detail["loc"] == ["body", "rule_expression"]
    assert says.lower() in detail["msg"].lower()
    assert "position" in detail  # where
    assert queued_count() == before


@pytest.mark.parametrize(
    "body",
    [
        {"rule_expression": "amount > 1", "since": RANGE["until"], "until": RANGE["since"]},
        {"rule_expression": "amount > 1", "since": RANGE["since"], "until": RANGE["since"]},
        {"rule_expression": "amount > 1", "since": "yesterday", "until": RANGE["until"]},
        {"rule_expression": "amount > 1", "since": RANGE["since"]},
        {"rule_expression": "amount > 1", **RANGE, "sample_size": -1},
        {"rule_expression": "amount > 1", **RANGE, "sample_size": 100_000},
        {"rule_expression": "amount > 1", **RANGE, "severity": "info"},
    ],
)
def test_bad_backtest_bodies_are_422_and_nothing_queued(client, api_keys, pipeline, body):
    before = queued_count()
    resp = client.post(f"/api/pipelines/{pipeline}/rules/backtest", json=body,
                       headers=auth(api_keys["analyst"]))
    assert resp.status_code == 422, resp.text
    assert queued_count() == before


def test_roles_and_missing_things(client, api_keys, pipeline):
    body = {"rule_expression": "amount > 1", **RANGE}
    path = f"/api/pipelines/{pipeline}/rules/backtest"
    before = queued_count()
    assert client.post(path, json=body).status_code == 401
    assert client.post(path, json=body, headers=auth(api_keys["viewer"])).status_code == 403
    missing = client.post("/api/pipelines/2000000000/rules/backtest", json=body,
                          headers=auth(api_keys["analyst"]))
    assert missing.status_code == 404 and "pipeline 2000000000" in missing.text
    assert queued_count() == before

    job = client.post(path, json=body, headers=auth(api_keys["analyst"])).json()
    viewer = auth(api_keys["viewer"])
    assert client.get(job["poll_url"]).status_code == 401
    gone = client.get(f"/api/pipelines/{pipeline}/rules/backtests/2000000000", headers=viewer)
    assert gone.status_code == 404 and "backtest 2000000000" in gone.text
    other = client.get(f"/api/pipelines/{pipeline + 1}/rules/backtests/{job['id']}",
                       headers=viewer)
    assert other.status_code == 404  # a job is only found under its own pipeline
    assert client.get(f"/api/pipelines/{pipeline}/rules/backtests/0",
                      headers=viewer).status_code == 422


def test_rule_with_lookback_queues_a_lookback_job(client, api_keys, pipeline):
    analyst = auth(api_keys["analyst"])
    plain = client.post(f"/api/pipelines/{pipeline}/rules",
                        json={"rule_expression": "amount > 10", "severity": "info"},
                        headers=analyst)
    assert plain.status_code == 201
    assert set(plain.json()) == {"id", "status", "version"}  # the seed's shape, unchanged

    before = queued_count()
    resp = client.post(f"/api/pipelines/{pipeline}/rules",
                       json={"rule_expression": "amount > 20", "severity": "warning",
                             "lookback_days": 3}, headers=analyst)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    lookback = created["lookback"]
    assert lookback["status"] == "queued"
    assert lookback["poll_url"] == f"/api/pipelines/{pipeline}/rules/backtests/{lookback['id']}"
    assert queued_count() == before + 1
    job = client.get(lookback["poll_url"], headers=auth(api_keys["viewer"])).json()
    assert job["kind"] == "lookback" and job["rule_id"] == created["id"]
    assert job["rule_version"] == 1 and job["rule_expression"] == "amount > 20"
    with get_engine().connect() as conn:
        created_at = conn.execute(
            select(rules.c.created_at).where(rules.c.id == created["id"])).scalar_one()
    assert datetime.fromisoformat(job["until"]) == created_at
    assert datetime.fromisoformat(job["since"]) == created_at - timedelta(days=3)


@pytest.mark.parametrize(
    "extra", [{"lookback_days": 0}, {"lookback_days": 400}, {"lookback_days": 2,
                                                             "is_active": False}]
)
def test_bad_lookback_is_422_and_nothing_stored(client, api_keys, pipeline, extra):
    before, rules_before = queued_count(), _rule_count()
    resp = client.post(f"/api/pipelines/{pipeline}/rules",
                       json={"rule_expression": "amount > 20", **extra},
                       headers=auth(api_keys["analyst"]))
    assert resp.status_code == 422, resp.text
    assert (queued_count(), _rule_count()) == (before, rules_before)


def _rule_count() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(rules)).scalar_one())


def test_the_api_never_imports_spark():
    code = ("import sys, api.main; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j', "
            "'delta', 'streaming')); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
