"""Hostile rule expressions are refused at the API with a 422 naming the offending token, and
nothing is stored; legitimate look-alikes are accepted and stored as Spark SQL that the API
accepts again unchanged."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from catalog.db import get_engine
from catalog.tables import rules
from tests.rule_cases import HOSTILE, LOOKALIKES, SCHEMA
from tests.support import auth

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(client: TestClient, api_keys: dict[str, str]) -> int:
    import uuid

    unique = uuid.uuid4().hex[:10]
    resp = client.post(
        "/api/pipelines",
        json={"name": f"safety {unique}", "kafka_topic": f"safety_{unique}", "schema": SCHEMA},
        headers=auth(api_keys["admin"]),
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def stored_rules(pipeline_id: int) -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(
            select(func.count()).select_from(rules).where(rules.c.pipeline_id == pipeline_id)
        ).scalar_one())


@pytest.mark.parametrize(("expression", "token"), HOSTILE)
def test_hostile_rule_is_422_naming_the_token(client, api_keys, pipeline, expression, token):
    before = stored_rules(pipeline)
    resp = client.post(f"/api/pipelines/{pipeline}/rules",
                       json={"rule_expression": expression}, headers=auth(api_keys["analyst"]))
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"][0]
    assert detail["loc"] == ["body", "rule_expression"]
    assert token.lower() in (detail["token"] or "").lower(), detail
    assert stored_rules(pipeline) == before
    # A backtest (which an analyst starts on demand) is refused the same way.
    backtest = client.post(
        f"/api/pipelines/{pipeline}/rules/backtest",
        json={"rule_expression": expression, "since": "2024-01-01", "until": "2024-02-01"},
        headers=auth(api_keys["analyst"]))
    assert backtest.status_code == 422 and backtest.json()["detail"][0]["token"] == detail["token"]


@pytest.mark.parametrize(("expression", "token"), HOSTILE[:12])
def test_dry_run_reports_the_same_refusal(client, api_keys, pipeline, expression, token):
    resp = client.post("/api/rules/validate", headers=auth(api_keys["viewer"]),
                       json={"pipeline_id": pipeline, "rule_expression": expression})
    assert resp.status_code == 200 and resp.json()["valid"] is False
    assert token.lower() in resp.json()["error"]["token"].lower()


@pytest.mark.parametrize("expression", LOOKALIKES)
def test_lookalike_is_accepted_and_stored_as_spark_sql(client, api_keys, pipeline, expression):
    analyst = auth(api_keys["analyst"])
    created = client.post(f"/api/pipelines/{pipeline}/rules",
                          json={"rule_expression": expression}, headers=analyst)
    assert created.status_code == 201, created.text
    stored = client.get(f"/api/rules/{created.json()['id']}", headers=analyst).json()
    # The stored text is itself an accepted rule, stored unchanged when submitted again.
    again = client.post(f"/api/pipelines/{pipeline}/rules",
                        json={"rule_expression": stored["rule_expression"]}, headers=analyst)
    assert again.status_code == 201, again.text
    restored = client.get(f"/api/rules/{again.json()['id']}", headers=analyst).json()
    assert restored["rule_expression"] == stored["rule_expression"]


def test_doubled_quote_is_stored_as_one_literal(client, api_keys, pipeline):
    created = client.post(f"/api/pipelines/{pipeline}/rules",
                          json={"rule_expression": "currency = 'O''Brien'"},
                          headers=auth(api_keys["analyst"]))
    stored = client.get(f"/api/rules/{created.json()['id']}", headers=auth(api_keys["viewer"]))
    assert stored.json()["rule_expression"] == "currency = 'O\\'Brien'"
    assert "CONCAT" not in stored.json()["rule_expression"]


def test_an_edit_is_checked_and_stored_the_same_way(client, api_keys, pipeline):
    analyst = auth(api_keys["analyst"])
    rid = client.post(f"/api/pipelines/{pipeline}/rules", json={"rule_expression": "amount > 1"},
                      headers=analyst).json()["id"]
    refused = client.put(f"/api/rules/{rid}", headers=analyst,
                         json={"rule_expression": "transaction_id RLIKE '(a+)+$'"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["token"] == "(a+)+$"
    edited = client.put(f"/api/rules/{rid}", headers=analyst,
                        json={"rule_expression": "amount > 2 and currency = 'it''s'"})
    assert edited.json()["rule_expression"] == "amount > 2 AND currency = 'it\\'s'"
    assert edited.json()["version"] == 2
