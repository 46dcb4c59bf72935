"""Alerts and risk look-ups: filters, cursor pagination and the Redis answer, checked against
rows this test writes itself (the stream's own writes are tested in the streaming suite)."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import insert

from catalog.db import get_engine
from catalog.settings import get_settings
from catalog.tables import fraud_alerts
from tests.support import auth

pytestmark = pytest.mark.integration

BASE = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded(catalog_db: None) -> list[dict]:
    """60 alerts over two synthetic pipelines, three rules and all severities."""
    rng = random.Random(7)
    pipeline_ids = (900_001, 900_002)
    rows = []
    for i in range(60):
        rows.append(
            {
                "alert_id": hashlib.sha256(f"api-test-{i}".encode()).hexdigest(),
                "pipeline_id": pipeline_ids[i % 2],
                "rule_id": 800_000 + i % 3,
                "rule_version": 1,
                "severity": ("critical", "warning", "info")[rng.randrange(3)],
                "score": float(i),
                "rule_description": f"rule {i % 3}",
                "event_id": f"evt-{i}",
                "event_time": BASE + timedelta(minutes=i),
                "alert_timestamp": BASE + timedelta(minutes=i // 2),  # ties on purpose
                "transaction_data": {"transaction_id": f"evt-{i}", "amount": i * 100.0},
                "kafka_partition": i % 3,
                "kafka_offset": i,
            }
        )
    with get_engine().begin() as conn:
        conn.execute(insert(fraud_alerts), rows)
    return rows


def expected(rows, **where):
    chosen = [
        r
        for r in rows
        if all(r[k] == v for k, v in where.items() if k not in ("since", "until"))
        and ("since" not in where or r["alert_timestamp"] >= where["since"])
        and ("until" not in where or r["alert_timestamp"] < where["until"])
    ]
    chosen.sort(key=lambda r: (r["alert_timestamp"], r["alert_id"]), reverse=True)
    return chosen


def fetch_all(client, key, params):
    seen, cursor = [], None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        resp = client.get("/api/alerts", params=query, headers=auth(key))
        assert resp.status_code == 200, resp.text
        seen.extend(resp.json())
        cursor = resp.headers.get("X-Next-Cursor")
        if not cursor:
            return seen


@pytest.mark.parametrize(
    "where",
    [
        {"pipeline_id": 900_001},
        {"pipeline_id": 900_002, "severity": "critical"},
        {"rule_id": 800_001},
        {"pipeline_id": 900_001, "since": BASE + timedelta(minutes=5)},
        {
            "pipeline_id": 900_002,
            "since": BASE + timedelta(minutes=3),
            "until": BASE + timedelta(minutes=20),
        },
    ],
)
def test_filters_and_pagination_match_independent_selection(client, api_keys, seeded, where):
    params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in where.items()}
    got = fetch_all(client, api_keys["viewer"], dict(params, limit=7))
    want = expected(seeded, **where)
    assert sorted(a["alert_id"] for a in got) == sorted(r["alert_id"] for r in want)
    assert len({a["id"] for a in got}) == len(got)  # no duplicates across pages
    stamps = [a["alert_timestamp"] for a in got]
    assert stamps == sorted(stamps, reverse=True)


def test_seed_shape_and_single_alert(client, api_keys, seeded):
    page = client.get("/api/alerts?limit=2&pipeline_id=900001", headers=auth(api_keys["viewer"]))
    first = page.json()[0]
    for field in (
        "id",
        "pipeline_id",
        "severity",
        "rule_description",
        "alert_timestamp",
        "transaction_data",
    ):
        assert field in first
    by_pk = client.get(f"/api/alerts/{first['id']}", headers=auth(api_keys["viewer"])).json()
    by_alert_id = client.get(f"/api/alerts/{first['alert_id']}", headers=auth(api_keys["viewer"]))
    assert by_pk == by_alert_id.json()
    assert client.get("/api/alerts/nope", headers=auth(api_keys["viewer"])).status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 5000},
        {"severity": "high"},
        {"cursor": "!!!"},
        {"since": "yesterday"},
        {"pipeline_id": -1},
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    ],
)
def test_bad_alert_queries_are_422(client, api_keys, params):
    resp = client.get("/api/alerts", params=params, headers=auth(api_keys["viewer"]))
    assert resp.status_code == 422, resp.text


def test_risk_lookup_reads_redis(client, api_keys, unique):
    redis = Redis.from_url(get_settings().redis_dsn, decode_responses=True)
    event_id = f"txn-{unique}"
    redis.hset(
        f"fraud:txn:{event_id}",
        mapping={
            "score": "87.5",
            "severity": "critical",
            "rule_ids": "3,11",
            "pipeline_id": "4",
            "alert_time": "2026-01-01T00:00:00+00:00",
        },
    )
    redis.expire(f"fraud:txn:{event_id}", 60)
    risky = client.get(
        f"/api/transactions/{event_id}/risk", headers=auth(api_keys["viewer"])
    ).json()
    assert risky == {
        "event_id": event_id,
        "risky": True,
        "score": 87.5,
        "severity": "critical",
        "rule_ids": [3, 11],
        "pipeline_id": 4,
        "alert_time": "2026-01-01T00:00:00+00:00",
    }
    clean = client.get(f"/api/transactions/clean-{unique}/risk", headers=auth(api_keys["viewer"]))
    assert clean.json()["risky"] is False
    assert client.get(f"/api/transactions/{event_id}/risk").status_code == 401


def test_health_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": True, "redis": True, "kafka": True}
