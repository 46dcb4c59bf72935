"""Rules through the API: validated at the door, versioned on every edit, and each change
bumps the pipeline's `rules_version` (the stream's hot-reload signal)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from catalog.db import get_engine
from catalog.tables import rules
from tests.support import auth

pytestmark = pytest.mark.integration

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "currency", "type": "string", "nullable": True},
    {"name": "is_new_wallet", "type": "boolean", "nullable": True},
]


@pytest.fixture
def pipeline(client: TestClient, api_keys: dict[str, str], unique: str) -> int:
    resp = client.post(
        "/api/pipelines",
        json={"name": f"rules {unique}", "kafka_topic": f"rules_{unique}", "schema": SCHEMA},
        headers=auth(api_keys["admin"]),
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def rules_version(client: TestClient, key: str, pid: int) -> int:
    return int(client.get(f"/api/pipelines/{pid}", headers=auth(key)).json()["rules_version"])


def rule_count() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(rules)).scalar_one())


def test_rule_lifecycle_versions_and_reload_signal(client, api_keys, pipeline):
    analyst = auth(api_keys["analyst"])
    v0 = rules_version(client, api_keys["viewer"], pipeline)
    created = client.post(
        f"/api/pipelines/{pipeline}/rules",
        json={"rule_expression": "amount > 5000", "severity": "critical", "score": 90},
        headers=analyst,
    )
    assert created.status_code == 201 and created.json()["status"] == "Rule added successfully"
    rid = created.json()["id"]
    assert rules_version(client, api_keys["viewer"], pipeline) == v0 + 1

    edited = client.put(
        f"/api/rules/{rid}",
        json={"rule_expression": "amount > 9000 AND currency <> 'USD'"},
        headers=analyst,
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2 and edited.json()["severity"] == "critical"
    toggled = client.patch(f"/api/rules/{rid}/status", json={"is_active": False}, headers=analyst)
    assert toggled.json()["version"] == 3 and toggled.json()["is_active"] is False
    assert rules_version(client, api_keys["viewer"], pipeline) == v0 + 3

    versions = client.get(f"/api/rules/{rid}/versions", headers=analyst).json()
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["rule_expression"] for v in versions] == [
        "amount > 5000",
        "amount > 9000 AND currency <> 'USD'",
        "amount > 9000 AND currency <> 'USD'",
    ]
    assert [v["is_active"] for v in versions] == [True, True, False]

    listed = client.get(f"/api/pipelines/{pipeline}/rules", headers=analyst).json()
    assert [r["id"] for r in listed] == [rid]
    assert client.delete(f"/api/rules/{rid}", headers=analyst).status_code == 204
    assert client.get(f"/api/rules/{rid}", headers=analyst).status_code == 404
    assert client.delete(f"/api/rules/{rid}", headers=analyst).status_code == 404
    assert rules_version(client, api_keys["viewer"], pipeline) == v0 + 4
    assert len(client.get(f"/api/rules/{rid}/versions", headers=analyst).json()) == 3


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("amount > 5000; DROP TABLE rules", "statement"),
        ("user_id NOT IN (SELECT user_id FROM whitelist_table)", "user_id"),
        ("reflect('java.lang.Runtime', 'getRuntime') IS NOT NULL", "reflect"),
        ("java_method('java.lang.System', 'exit', 0) = 1", "java_method"),
        ("amout > 5", "amout"),
        ("amount + 1", "true or false"),
        ("amount > ", "incomplete"),
        ("my_udf(amount) > 3", "my_udf"),
    ],
)
def test_bad_rules_are_422_with_a_precise_message_and_nothing_stored(
    client, api_keys, pipeline, expression, says
):
    before = rule_count()
    resp = client.post(
        f"/api/pipelines/{pipeline}/rules",
        json={"rule_expression": expression, "severity": "critical"},
        headers=auth(api_keys["analyst"]),
    )
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"][0]
    assert detail["loc"] == ["body", "rule_expression"]
    assert says.lower() in detail["msg"].lower()
    assert rule_count() == before


@pytest.mark.parametrize(
    "body",
    [
        {"rule_expression": "amount > 1", "severity": "urgent"},
        {"rule_expression": "", "severity": "info"},
        {"rule_expression": "amount > 1", "score": "high"},
        {"rule_expression": "amount > 1", "score": 1000},
        {"rule_expression": 5},
        {"severity": "info"},
        {"rule_expression": "amount > 1", "owner": "me"},
    ],
)
def test_bad_rule_bodies_are_422(client, api_keys, pipeline, body):
    resp = client.post(
        f"/api/pipelines/{pipeline}/rules", json=body, headers=auth(api_keys["analyst"])
    )
    assert resp.status_code == 422, resp.text


def test_rule_on_unknown_pipeline_and_bad_updates(client, api_keys, pipeline):
    analyst = auth(api_keys["analyst"])
    missing = client.post(
        "/api/pipelines/999999/rules", json={"rule_expression": "amount > 1"}, headers=analyst
    )
    assert missing.status_code == 404
    rid = client.post(
        f"/api/pipelines/{pipeline}/rules", json={"rule_expression": "amount > 1"}, headers=analyst
    ).json()["id"]
    assert client.put(f"/api/rules/{rid}", json={}, headers=analyst).status_code == 422
    nulled = client.put(f"/api/rules/{rid}", json={"severity": None}, headers=analyst)
    assert nulled.status_code == 422
    bad_expr = client.put(
        f"/api/rules/{rid}", json={"rule_expression": "nope = 1"}, headers=analyst
    )
    assert bad_expr.status_code == 422 and "nope" in bad_expr.text
    assert client.get(f"/api/rules/{rid}", headers=analyst).json()["version"] == 1
    assert (
        client.put("/api/rules/999999", json={"severity": "info"}, headers=analyst).status_code
        == 404
    )


def test_validate_is_a_dry_run(client, api_keys, pipeline):
    viewer = auth(api_keys["viewer"])
    before = rule_count()
    ok = client.post(
        "/api/rules/validate",
        json={"pipeline_id": pipeline, "rule_expression": "is_new_wallet AND amount > 10"},
        headers=viewer,
    ).json()
    assert ok["valid"] is True and ok["columns"] == ["amount", "is_new_wallet"]
    bad = client.post(
        "/api/rules/validate",
        json={"pipeline_id": pipeline, "rule_expression": "amount >> 'x' ((("},
        headers=viewer,
    ).json()
    assert bad["valid"] is False and bad["error"]["message"]
    missing = client.post(
        "/api/rules/validate",
        json={"pipeline_id": 999999, "rule_expression": "1=1"},
        headers=viewer,
    )
    assert missing.status_code == 404
    assert rule_count() == before


VELOCITY_SCHEMA = [
    {"name": "txn_id", "type": "string", "nullable": False},
    {"name": "account", "type": "string", "nullable": False},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "ts", "type": "timestamp", "nullable": False},
]
WINDOW = ("OVER (PARTITION BY account ORDER BY ts RANGE BETWEEN INTERVAL {} PRECEDING AND "
          "CURRENT ROW)")


@pytest.fixture
def velocity_pipeline(client: TestClient, api_keys: dict[str, str], unique: str) -> int:
    resp = client.post(
        "/api/pipelines",
        json={"name": f"velocity {unique}", "kafka_topic": f"velocity_{unique}",
              "schema": VELOCITY_SCHEMA},
        headers=auth(api_keys["admin"]),
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def test_velocity_rules_are_stored_like_any_rule(client, api_keys, velocity_pipeline):
    analyst = auth(api_keys["analyst"])
    expression = f"count(*) {WINDOW.format('5 MINUTES')} >= 3 AND amount > 100"
    created = client.post(f"/api/pipelines/{velocity_pipeline}/rules",
                          json={"rule_expression": expression, "severity": "warning"},
                          headers=analyst)
    assert created.status_code == 201, created.text
    stored = client.get(f"/api/rules/{created.json()['id']}", headers=analyst).json()
    assert stored["rule_expression"] == (
        "COUNT(*) OVER (PARTITION BY account ORDER BY ts RANGE BETWEEN INTERVAL '5' MINUTES "
        "PRECEDING AND CURRENT ROW) >= 3 AND amount > 100")

    edited = client.put(f"/api/rules/{created.json()['id']}", headers=analyst, json={
        "rule_expression": f"sum(amount) {WINDOW.format('10 MINUTES')} > 2000"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2 and "SUM(amount) OVER" in edited.json()[
        "rule_expression"]

    checked = client.post("/api/rules/validate", headers=auth(api_keys["viewer"]), json={
        "pipeline_id": velocity_pipeline, "rule_expression": expression}).json()
    assert checked["valid"] is True and checked["columns"] == ["account", "amount", "ts"]


@pytest.mark.parametrize(
    ("expression", "says", "at"),
    [
        ("count(*) OVER (PARTITION BY account ORDER BY ts ROWS BETWEEN 5 PRECEDING AND CURRENT "
         "ROW) >= 3", "ROWS frames are not allowed", "ROWS"),
        (f"count(*) {WINDOW.format('2 DAYS')} >= 3", "longer than the allowed maximum", "INTERVAL"),
        (f"count(*) {WINDOW.format('5 MINUTES').replace('ts', 'amount')} >= 3",
         "a window is ordered by a timestamp field", "amount"),
        (f"median(amount) {WINDOW.format('5 MINUTES')} > 3", "cannot be used over a window",
         "median"),
    ],
)
def test_bad_windows_are_422_with_what_and_where(client, api_keys, velocity_pipeline,
                                                 expression, says, at):
    before = rule_count()
    resp = client.post(f"/api/pipelines/{velocity_pipeline}/rules",
                       json={"rule_expression": expression}, headers=auth(api_keys["analyst"]))
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"][0]
    assert detail["loc"] == ["body", "rule_expression"]
    assert says in detail["msg"]
    assert detail["position"] == expression.index(at)
    assert f"at position {expression.index(at)}" in detail["msg"]
    assert rule_count() == before
