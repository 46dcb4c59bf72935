"""Malformed and hostile input gets a 4xx that says what and where, never a 5xx: NUL characters
and lone surrogates, %00 in paths and queries, overflowing cursors, oversized bodies (413 before
the key is checked), Kafka-illegal topics; no server path in any answer; field names that clash
with alert columns are refused; a no-op status change keeps the rule's version."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from catalog.db import get_engine
from catalog.rules.field_types import ALERT_ROW_COLUMNS
from catalog.settings import get_settings
from catalog.tables import backtests, pipelines
from tests.support import auth

pytestmark = pytest.mark.integration

SCHEMA = [{"name": "txn_id", "type": "string", "nullable": False},
          {"name": "amount", "type": "double", "nullable": False}]


@pytest.fixture
def pipeline(client, api_keys, unique) -> int:
    resp = client.post("/api/pipelines", headers=auth(api_keys["admin"]), json={
        "name": f"hard {unique}", "kafka_topic": f"hard_{unique}", "schema": SCHEMA})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def send(client, method: str, url: str, body: object, headers: dict[str, str]):
    """A JSON request as an attacker would send it: lone surrogates as \\u escapes."""
    return client.request(method, url, content=json.dumps(body).encode(),
                          headers={**headers, "content-type": "application/json"})


def pipeline_count() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(pipelines)).scalar_one())


def cursor_of(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b", "\udfff"])
@pytest.mark.parametrize("field", ["rule_expression", "description"])
def test_nul_and_lone_surrogates_in_rules_are_422(client, api_keys, pipeline, bad, field):
    body = {"rule_expression": "amount > 1", field: bad}
    resp = send(client, "POST", f"/api/pipelines/{pipeline}/rules", body,
                auth(api_keys["analyst"]))
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"][0]
    assert detail["loc"][-1] == field and "position" in detail["msg"]


@pytest.mark.parametrize("bad", ["pipe\x00line", "pipe\ud800line"])
def test_nul_and_lone_surrogates_in_pipeline_names_are_422(client, api_keys, unique, bad):
    before = pipeline_count()
    resp = send(client, "POST", "/api/pipelines", {
        "name": bad, "kafka_topic": f"sur_{unique}", "schema": SCHEMA}, auth(api_keys["admin"]))
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "name"]
    assert pipeline_count() == before


def test_nul_in_validate_and_backtest_bodies_is_422(client, api_keys, pipeline):
    resp = send(client, "POST", "/api/rules/validate",
                {"pipeline_id": pipeline, "rule_expression": "amount\x00 > 1"},
                auth(api_keys["viewer"]))
    assert resp.status_code == 422
    resp = send(client, "POST", f"/api/pipelines/{pipeline}/rules/backtest",
                {"rule_expression": "\ud800", "since": "2024-01-01T00:00:00",
                 "until": "2024-01-02T00:00:00"}, auth(api_keys["analyst"]))
    assert resp.status_code == 422


@pytest.mark.parametrize(("url", "where"), [
    ("/api/alerts/%00", "path"),
    ("/api/alerts/a%00b", "path"),
    ("/api/audit?entity=%00", "query"),
    ("/api/alerts?cursor=%00", "query"),
])
def test_nul_in_path_or_query_is_422_naming_where(client, api_keys, url, where):
    resp = client.get(url, headers=auth(api_keys["admin"]))
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == [where]


@pytest.mark.parametrize("cursor", [
    cursor_of(["2024-01-01T00:00:00", 1e400]),
    cursor_of(["2024-01-01T00:00:00", 10**30]),
    cursor_of(["2024-01-01T00:00:00", -1]),
    cursor_of(["not a time", 1]),
    "!!!",
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_bad_cursors_are_422(client, api_keys, cursor):
    resp = client.get("/api/alerts", params={"cursor": cursor}, headers=auth(api_keys["viewer"]))
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_bad_alert_refs_and_audit_entities_are_422(client, api_keys):
    assert client.get("/api/alerts/a b", headers=auth(api_keys["viewer"])).status_code == 422
    assert client.get("/api/audit", params={"entity": "rule;drop"},
                      headers=auth(api_keys["admin"])).status_code == 422


def test_an_oversized_body_is_413_before_the_key_is_checked(client, api_keys):
    limit = get_settings().api_max_body_bytes
    big = b'{"name": "' + b"x" * (limit + 10) + b'"}'
    for headers in ({}, auth("snl_forged_key"), auth(api_keys["admin"])):
        resp = client.post("/api/pipelines", content=big,
                           headers={**headers, "content-type": "application/json"})
        assert resp.status_code == 413, resp.text
        assert resp.json()["detail"][0]["loc"] == ["body"]


def test_an_oversized_streamed_body_is_413(client):
    limit = get_settings().api_max_body_bytes

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    resp = client.post("/api/pipelines", content=chunks(),
                       headers={"content-type": "application/json"})
    assert resp.status_code == 413


def test_a_body_within_the_limit_still_works(client, api_keys, pipeline):
    description = "d" * 1900
    resp = client.post(f"/api/pipelines/{pipeline}/rules", headers=auth(api_keys["analyst"]),
                       json={"rule_expression": "amount > 1", "description": description})
    assert resp.status_code == 201
    rule = client.get(f"/api/rules/{resp.json()['id']}", headers=auth(api_keys["viewer"]))
    assert rule.json()["description"] == description


@pytest.mark.parametrize("topic", [".", "..", "a" * 250, "bad/topic", "sp ace", "ümlaut", ""])
def test_kafka_illegal_topics_are_422_and_nothing_is_stored(client, api_keys, unique, topic):
    before = pipeline_count()
    resp = client.post("/api/pipelines", headers=auth(api_keys["admin"]), json={
        "name": f"topic {unique}", "kafka_topic": topic, "schema": SCHEMA})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "kafka_topic"]
    assert "kafka.protocol" not in resp.text and "Traceback" not in resp.text
    assert pipeline_count() == before


@pytest.mark.parametrize("name", sorted(ALERT_ROW_COLUMNS))
def test_field_names_clashing_with_alert_columns_are_422(client, api_keys, unique, name):
    schema = [*SCHEMA, {"name": name, "type": "string"}]
    resp = client.post("/api/pipelines", headers=auth(api_keys["admin"]), json={
        "name": f"clash {unique}", "kafka_topic": f"clash_{unique}", "schema": schema})
    assert resp.status_code == 422, resp.text
    assert name in resp.text and "alert column" in resp.text


def test_alert_column_names_are_refused_on_schema_evolution_too(client, api_keys, pipeline):
    resp = client.put(f"/api/pipelines/{pipeline}/schema", headers=auth(api_keys["admin"]),
                      json=[*SCHEMA, {"name": "severity", "type": "string"}])
    assert resp.status_code == 422 and "severity" in resp.text


def test_backtest_results_hide_server_paths(client, api_keys, pipeline):
    queued = client.post(f"/api/pipelines/{pipeline}/rules/backtest",
                         headers=auth(api_keys["analyst"]),
                         json={"rule_expression": "amount > 1", "since": "2024-01-01T00:00:00",
                               "until": "2024-01-02T00:00:00"})
    assert queued.status_code == 202
    root = get_settings().warehouse_root
    with get_engine().begin() as conn:
        conn.execute(update(backtests).where(backtests.c.id == queued.json()["id"]).values(
            status="failed", results={"hits": 3, "events_table": f"{root}/bronze/x/events"},
            error=f"AnalysisException: Path does not exist: {root}/bronze/x/events"))
    for role in ("viewer", "analyst", "admin"):
        one = client.get(queued.json()["poll_url"], headers=auth(api_keys[role]))
        listed = client.get(f"/api/pipelines/{pipeline}/rules/backtests",
                            headers=auth(api_keys[role]))
        for text in (one.text, listed.text):
            assert root not in text and "events_table" not in text
        assert one.json()["results"] == {"hits": 3}
        assert "Path does not exist: <warehouse>/bronze/x/events" in one.json()["error"]


def test_a_no_op_status_change_keeps_the_version(client, api_keys, pipeline):
    analyst = auth(api_keys["analyst"])
    rid = client.post(f"/api/pipelines/{pipeline}/rules", json={"rule_expression": "amount > 1"},
                      headers=analyst).json()["id"]
    signal = client.get(f"/api/pipelines/{pipeline}", headers=analyst).json()["rules_version"]
    same = client.patch(f"/api/rules/{rid}/status", json={"is_active": True}, headers=analyst)
    assert same.status_code == 200 and same.json()["version"] == 1
    same_edit = client.put(f"/api/rules/{rid}", json={"rule_expression": "amount  >  1"},
                           headers=analyst)
    assert same_edit.json()["version"] == 1
    assert len(client.get(f"/api/rules/{rid}/versions", headers=analyst).json()) == 1
    after = client.get(f"/api/pipelines/{pipeline}", headers=analyst).json()["rules_version"]
    assert after == signal
    changed = client.patch(f"/api/rules/{rid}/status", json={"is_active": False},
                           headers=analyst)
    assert changed.json()["version"] == 2 and changed.json()["is_active"] is False
