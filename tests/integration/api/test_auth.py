"""Authentication and roles: no key → 401, a viewer changes nothing (403), an analyst edits
rules but not pipelines, and every change lands in the audit log with before/after."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support import auth

pytestmark = pytest.mark.integration

SCHEMA = [{"name": "order_id", "type": "string", "nullable": False}]


@pytest.fixture
def setup(client: TestClient, api_keys: dict[str, str], unique: str) -> tuple[int, int]:
    admin = auth(api_keys["admin"])
    pid = client.post(
        "/api/pipelines",
        json={"name": f"auth {unique}", "kafka_topic": f"auth_{unique}", "schema": SCHEMA},
        headers=admin,
    ).json()["id"]
    rid = client.post(
        f"/api/pipelines/{pid}/rules", json={"rule_expression": "order_id = 'x'"}, headers=admin
    ).json()["id"]
    return pid, rid


MUTATIONS = [
    ("POST", "/api/pipelines", "new-pipeline"),
    ("PATCH", "/api/pipelines/{pid}/status", {"status": "paused"}),
    ("PUT", "/api/pipelines/{pid}/schema", SCHEMA),
    ("POST", "/api/pipelines/{pid}/rules", {"rule_expression": "order_id = 'y'"}),
    ("PUT", "/api/rules/{rid}", {"severity": "info"}),
    ("PATCH", "/api/rules/{rid}/status", {"is_active": False}),
    ("DELETE", "/api/rules/{rid}", None),
    ("POST", "/api/keys", "new-key"),
]


def mutations(pid: int, rid: int, unique: str) -> list[tuple[str, str, object, str]]:
    """(method, concrete path, body, path template) of every change the API offers."""
    bodies = {
        "new-pipeline": {"name": f"x{unique}", "kafka_topic": f"x{unique}", "schema": SCHEMA},
        "new-key": {"name": f"k{unique}", "role": "admin"},
    }
    return [
        (
            method,
            path.format(pid=pid, rid=rid),
            bodies[body] if isinstance(body, str) else body,
            path,
        )
        for method, path, body in MUTATIONS
    ]


READS = ["/api/pipelines", "/api/alerts", "/api/pipelines/{pid}", "/api/pipelines/{pid}/schema"]


def test_no_key_or_a_bad_key_is_401(client, setup, unique):
    pid, rid = setup
    for path in READS:
        assert client.get(path.format(pid=pid)).status_code == 401
        bad = client.get(path.format(pid=pid), headers={"X-API-Key": "snl_abc_def"})
        assert bad.status_code == 401
        assert (
            client.get(path.format(pid=pid), headers={"Authorization": "Bearer x"}).status_code
            == 401
        )
    for method, path, body, _ in mutations(pid, rid, unique):
        assert client.request(method, path, json=body).status_code == 401, (method, path)


def test_viewer_can_read_but_changes_nothing(client, api_keys, setup, unique):
    pid, rid = setup
    viewer = auth(api_keys["viewer"])
    for path in READS:
        assert client.get(path.format(pid=pid), headers=viewer).status_code == 200
    before = client.get("/api/audit", headers=auth(api_keys["admin"])).json()
    for method, path, body, _ in mutations(pid, rid, unique):
        resp = client.request(method, path, json=body, headers=viewer)
        assert resp.status_code == 403, (method, path, resp.text)
        assert "viewer" in resp.json()["detail"]
    assert client.get("/api/audit", headers=auth(api_keys["admin"])).json() == before
    assert client.get(f"/api/rules/{rid}", headers=viewer).json()["version"] == 1


def test_analyst_edits_rules_not_pipelines(client, api_keys, setup, unique):
    pid, rid = setup
    analyst = auth(api_keys["analyst"])
    allowed = {
        "POST /api/pipelines/{pid}/rules",
        "PUT /api/rules/{rid}",
        "PATCH /api/rules/{rid}/status",
        "DELETE /api/rules/{rid}",
    }
    for method, path, body, template in mutations(pid, rid, unique):
        template = f"{method} {template}"
        resp = client.request(method, path, json=body, headers=analyst)
        expected = {200, 201, 204} if template in allowed else {403}
        assert resp.status_code in expected, (template, resp.status_code, resp.text)


def test_every_change_is_audited_with_actor_before_after(client, api_keys, unique):
    admin = auth(api_keys["admin"])
    pid = client.post(
        "/api/pipelines",
        json={"name": f"audit {unique}", "kafka_topic": f"audit_{unique}", "schema": SCHEMA},
        headers=admin,
    ).json()["id"]
    client.patch(f"/api/pipelines/{pid}/status", json={"status": "stopped"}, headers=admin)
    rid = client.post(
        f"/api/pipelines/{pid}/rules", json={"rule_expression": "order_id = 'a'"}, headers=admin
    ).json()["id"]
    client.put(f"/api/rules/{rid}", json={"severity": "critical"}, headers=admin)
    client.patch(f"/api/rules/{rid}/status", json={"is_active": False}, headers=admin)
    client.delete(f"/api/rules/{rid}", headers=admin)

    p_log = client.get(f"/api/audit?entity=pipeline&entity_id={pid}", headers=admin).json()
    assert [e["action"] for e in reversed(p_log)] == ["pipeline.create", "pipeline.status"]
    assert p_log[0]["before"]["status"] == "active" and p_log[0]["after"]["status"] == "stopped"
    r_log = client.get(f"/api/audit?entity=rule&entity_id={rid}", headers=admin).json()
    assert [e["action"] for e in reversed(r_log)] == [
        "rule.create",
        "rule.update",
        "rule.status",
        "rule.delete",
    ]
    update = r_log[2]
    assert update["before"]["severity"] == "warning" and update["after"]["severity"] == "critical"
    assert r_log[0]["after"] is None and r_log[0]["before"]["id"] == rid
    assert {e["actor"] for e in p_log + r_log} == {e["actor"] for e in p_log}
    assert p_log[0]["actor"].startswith("test-admin-")
    assert client.get("/api/audit", headers=auth(api_keys["analyst"])).status_code == 403


def test_admin_issues_and_revokes_keys(client, api_keys, unique):
    admin = auth(api_keys["admin"])
    created = client.post(
        "/api/keys", json={"name": f"svc {unique}", "role": "viewer"}, headers=admin
    )
    assert created.status_code == 201
    key = created.json()["key"]
    assert client.get("/api/pipelines", headers=auth(key)).status_code == 200
    listed = client.get("/api/keys", headers=admin).json()
    assert all("key_hash" not in k and "key" not in k for k in listed)
    dup = client.post("/api/keys", json={"name": f"svc {unique}", "role": "viewer"}, headers=admin)
    assert dup.status_code == 409
    assert client.delete(f"/api/keys/{created.json()['id']}", headers=admin).status_code == 204
    assert client.get("/api/pipelines", headers=auth(key)).status_code == 401


def test_an_admin_cannot_revoke_the_key_in_use(client, api_keys):
    admin = auth(api_keys["admin"])
    me = next(k for k in client.get("/api/keys", headers=admin).json()
              if api_keys["admin"].startswith(f"snl_{k['prefix']}_"))
    refused = client.delete(f"/api/keys/{me['id']}", headers=admin)
    assert refused.status_code == 409 and "this request" in refused.json()["detail"]
    assert client.get("/api/keys", headers=admin).status_code == 200  # still valid
