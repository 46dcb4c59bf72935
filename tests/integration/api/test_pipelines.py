"""Pipelines through the API: create (topic on the real broker), read, status, schema evolution,
and every kind of bad input answered with a 4xx that says what is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka.admin import KafkaAdminClient
from sqlalchemy import func, select

from catalog.db import get_engine
from catalog.settings import get_settings
from catalog.tables import pipeline_schema_versions, pipelines
from tests.support import auth

pytestmark = pytest.mark.integration

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "user_id", "type": "integer", "nullable": False},
    {"name": "amount", "type": "float", "nullable": False},
    {"name": "currency", "type": "string", "nullable": True},
]


def make(client: TestClient, key: str, unique: str, **extra: Any) -> Any:
    body = {"name": f"payments {unique}", "kafka_topic": f"payments_{unique}", "schema": SCHEMA}
    body.update(extra)
    return client.post("/api/pipelines", json=body, headers=auth(key))


def pipeline_count() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(pipelines)).scalar_one())


def test_create_makes_topic_with_partitions_and_default_key(client, api_keys, unique):
    resp = make(client, api_keys["admin"], unique, partitions=2)
    assert resp.status_code == 201, resp.text
    pid = resp.json()["id"]
    detail = client.get(f"/api/pipelines/{pid}", headers=auth(api_keys["viewer"])).json()
    assert detail["key_field"] == "transaction_id"
    assert detail["partitions"] == 2 and detail["schema_version"] == 1
    assert detail["schema"] == SCHEMA
    admin = KafkaAdminClient(bootstrap_servers=get_settings().kafka_bootstrap_servers)
    try:
        described = admin.describe_topics([f"payments_{unique}"])
    finally:
        admin.close()
    assert len(described[0]["partitions"]) == 2


def test_explicit_key_field_must_exist_and_be_required(client, api_keys, unique):
    bad = make(client, api_keys["admin"], unique, key_field="nope")
    assert bad.status_code == 422 and "nope" in bad.text
    nullable = make(client, api_keys["admin"], unique, key_field="currency")
    assert nullable.status_code == 422 and "non-nullable" in nullable.text
    ok = make(client, api_keys["admin"], unique, key_field="user_id")
    assert ok.status_code == 201


def test_duplicate_name_or_topic_is_409_and_stores_nothing(client, api_keys, unique):
    assert make(client, api_keys["admin"], unique).status_code == 201
    before = pipeline_count()
    same_name = make(client, api_keys["admin"], unique, kafka_topic=f"other_{unique}")
    assert same_name.status_code == 409 and "already exists" in same_name.json()["detail"]
    same_topic = make(client, api_keys["admin"], unique, name=f"other {unique}")
    assert same_topic.status_code == 409 and f"payments_{unique}" in same_topic.json()["detail"]
    assert pipeline_count() == before


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"schema": []}, "schema"),
        ({"schema": [{"name": "a", "type": "varchar", "nullable": False}]}, "type"),
        ({"schema": [{"name": "1abc", "type": "string"}]}, "name"),
        ({"schema": [{"name": "_event_id", "type": "string"}]}, "name"),
        ({"schema": [{"name": "a", "type": "string"}, {"name": "A", "type": "long"}]}, "schema"),
        ({"schema": [{"name": "a", "type": "string", "colour": "red"}]}, "colour"),
        ({"kafka_topic": "bad topic!"}, "kafka_topic"),
        ({"kafka_topic": ""}, "kafka_topic"),
        ({"name": ""}, "name"),
        ({"name": 42}, "name"),
        ({"status": "running"}, "status"),
        ({"partitions": 0}, "partitions"),
        ({"partitions": "many"}, "partitions"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_pipeline_bodies_are_422_naming_the_field(client, api_keys, unique, change, where):
    before = pipeline_count()
    resp = make(client, api_keys["admin"], unique, **change)
    assert resp.status_code == 422, resp.text
    assert where in resp.text
    assert pipeline_count() == before


def test_malformed_json_and_wrong_shape_are_422(client, api_keys):
    headers = dict(auth(api_keys["admin"]), **{"Content-Type": "application/json"})
    assert client.post("/api/pipelines", content=b"{not json", headers=headers).status_code == 422
    assert client.post("/api/pipelines", content=b"[1,2]", headers=headers).status_code == 422
    assert client.post("/api/pipelines", content=b"", headers=headers).status_code == 422


def test_unknown_ids_are_404_and_overflowing_ids_422(client, api_keys):
    viewer = auth(api_keys["viewer"])
    assert client.get("/api/pipelines/999999", headers=viewer).status_code == 404
    assert client.get("/api/pipelines/999999/schema", headers=viewer).status_code == 404
    assert client.get("/api/pipelines/99999999999999", headers=viewer).status_code == 422
    assert client.get("/api/pipelines/abc", headers=viewer).status_code == 422
    resp = client.patch(
        "/api/pipelines/999999/status", json={"status": "paused"}, headers=auth(api_keys["admin"])
    )
    assert resp.status_code == 404


def test_status_changes_and_bad_status(client, api_keys, unique):
    pid = make(client, api_keys["admin"], unique).json()["id"]
    admin = auth(api_keys["admin"])
    for status in ("paused", "stopped", "active"):
        resp = client.patch(f"/api/pipelines/{pid}/status", json={"status": status}, headers=admin)
        assert resp.status_code == 200 and resp.json()["status"] == status
    bad = client.patch(f"/api/pipelines/{pid}/status", json={"status": "gone"}, headers=admin)
    assert bad.status_code == 422
    listed = {p["id"]: p for p in client.get("/api/pipelines", headers=admin).json()}
    assert listed[pid]["status"] == "active"


def test_schema_evolution_compatible_and_refused(client, api_keys, unique):
    pid = make(client, api_keys["admin"], unique).json()["id"]
    admin = auth(api_keys["admin"])
    widened = [dict(f) for f in SCHEMA]
    widened[1]["type"] = "long"
    widened.append({"name": "country", "type": "string", "nullable": True})
    ok = client.put(f"/api/pipelines/{pid}/schema", json=widened, headers=admin)
    assert ok.status_code == 200, ok.text
    assert ok.json()["schema_version"] == 2
    assert client.get(f"/api/pipelines/{pid}/schema", headers=admin).json() == widened

    refused = {
        "removed field": widened[1:],
        "narrowed type": [dict(widened[0]), dict(widened[1], type="integer"), *widened[2:]],
        "new required field": [*widened, {"name": "x", "type": "string", "nullable": False}],
    }
    for label, schema in refused.items():
        resp = client.put(f"/api/pipelines/{pid}/schema", json={"schema": schema}, headers=admin)
        assert resp.status_code == 409, label
        assert "incompatible schema change" in resp.json()["detail"], label
    with get_engine().connect() as conn:
        versions = conn.execute(
            select(pipeline_schema_versions.c.schema_version).where(
                pipeline_schema_versions.c.pipeline_id == pid
            )
        ).scalars()
        assert sorted(versions) == [1, 2]
    same = client.put(f"/api/pipelines/{pid}/schema", json=widened, headers=admin)
    assert same.json()["schema_version"] == 2


def test_health_before_any_run(client, api_keys, unique):
    pid = make(client, api_keys["admin"], unique).json()["id"]
    health = client.get(f"/api/pipelines/{pid}/health", headers=auth(api_keys["viewer"])).json()
    assert health == {
        "pipeline_id": pid,
        "pipeline_status": "active",
        "state": "never_started",
        "rules_version": None,
        "catalog_rules_version": 0,
        "run": None,
    }
