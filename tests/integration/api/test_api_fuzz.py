"""Schemathesis against the live API's OpenAPI spec, once per role and once without a key.

Every operation gets generated valid and invalid requests (path, query, headers, body). For each
caller the expectations are independent of what the API prints:
- no response is a 5xx;
- without a key (or with a forged one) nothing under ``/api`` answers 2xx;
- a viewer never gets a 2xx from a POST/PUT/PATCH/DELETE (except the read-only dry run
  ``POST /api/rules/validate``), and the catalog is byte-for-byte the same after all the
  viewer's requests;
- admin and analyst requests that pass validation get responses that match the spec's schema.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from sqlalchemy import text

from catalog.api_keys import create_key
from catalog.db import get_engine

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("SENTINEL_FUZZ_EXAMPLES", "15"))
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# POSTs that only read: a 2xx to a viewer is expected (the catalog fingerprint still proves
# nothing changed).
READ_ONLY_POSTS = {"/api/rules/validate"}
# Every catalog table a request could change; hashed row by row to prove a viewer changed nothing.
# api_keys is hashed without last_used_at, which every authenticated request updates.
CATALOG_TABLES = {
    "pipelines": "t", "pipeline_schema_versions": "t", "rules": "t", "rule_versions": "t",
    "fraud_alerts": "t", "audit_log": "t", "backtests": "t",
    "api_keys": "(t.id, t.name, t.prefix, t.key_hash, t.role, t.is_active)",
}
FORGED = "snl_aaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


def catalog_fingerprint() -> str:
    digest = hashlib.sha256()
    with get_engine().connect() as conn:
        for table, row in CATALOG_TABLES.items():
            if conn.execute(text("select to_regclass(:t)"), {"t": table}).scalar() is None:
                continue
            # Table and column names come from the constant above, never from input.
            rows = conn.execute(text(
                f"select md5(coalesce(string_agg({row}::text, '|' order by {row}::text), '')) "
                f"from {table} t")).scalar_one()
            digest.update(f"{table}:{rows};".encode())
    return digest.hexdigest()


@pytest.fixture(autouse=True)
def keep_other_keys(catalog_db):
    """An admin's fuzzed DELETE /api/keys/{id} may revoke any key, including the ones the rest
    of the session's tests use: those that were active before a test are active again after."""
    with get_engine().connect() as conn:
        active = [r.id for r in conn.execute(text("select id from api_keys where is_active"))]
    yield
    with get_engine().begin() as conn:
        conn.execute(text("update api_keys set is_active = true where id = any(:ids)"),
                     {"ids": active})


@pytest.fixture
def fresh_key(catalog_db):
    """A key of its own for each fuzzed caller: another caller's revocations cannot hit it."""
    def make(role: str) -> str:
        with get_engine().begin() as conn:
            return create_key(conn, name=f"fuzz-{role}-{uuid.uuid4().hex[:8]}", role=role)
    return make


def still_valid(base_url: str, key: str) -> bool:
    return requests.get(f"{base_url}/api/pipelines", headers={"X-API-Key": key},
                        timeout=10).status_code == 200


@pytest.fixture(scope="module")
def api_schema(live_api: str):
    return schemathesis.openapi.from_url(f"{live_api}/openapi.json")


@pytest.fixture(scope="module")
def operations(api_schema) -> list[Any]:
    ops = [result.ok() for result in api_schema.get_all_operations()]
    assert len(ops) >= 20, [f"{op.method} {op.path}" for op in ops]
    return ops


def fuzz(operations: list[Any], base_url: str, headers: dict[str, str],
         check) -> tuple[list[str], Counter[int]]:
    """Runs every operation with generated cases; returns readable failures and status counts."""
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    session = requests.Session()
    for op in operations:
        fuzz_one(op, base_url, session, headers, check, failures, statuses)
    print(f"fuzz {sorted(statuses.items())}")
    return failures, statuses


def fuzz_one(op, base_url: str, session, headers: dict[str, str], check,
             failures: list[str], statuses: Counter[int]) -> None:
    strategy = op.as_strategy(GenerationMode.POSITIVE) | op.as_strategy(GenerationMode.NEGATIVE)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case) -> None:
        call_headers = {k: v for k, v in (case.headers or {}).items()
                        if k.lower() not in ("x-api-key", "authorization")}
        call_headers.update(headers)
        response = case.call(base_url=base_url, session=session, headers=call_headers)
        statuses[response.status_code] += 1
        problem = check(op, case, response)
        if problem:
            failures.append(f"{op.method.upper()} {op.path}: {problem}\n"
                            f"    {case.as_curl_command()}\n    -> {response.status_code} "
                            f"{response.text[:300]}")

    run()


def no_server_error(op, case, response) -> str | None:
    return f"server error {response.status_code}" if response.status_code >= 500 else None


@pytest.mark.parametrize("caller", ["admin", "analyst"])
def test_writers_get_no_5xx_and_responses_match_the_spec(caller, operations, live_api,
                                                         fresh_key):
    key = fresh_key(caller)

    def check(op, case, response) -> str | None:
        if problem := no_server_error(op, case, response):
            return problem
        if response.status_code < 300 and op.is_valid_response(response) is False:
            return "2xx body does not match the documented response schema"
        return None

    failures, statuses = fuzz(operations, live_api, {"X-API-Key": key}, check)
    assert not failures, "\n".join(failures[:20])
    # Not vacuous: the caller's key worked throughout and many requests were accepted.
    assert still_valid(live_api, key)
    assert sum(n for code, n in statuses.items() if code < 300) >= len(operations)


@pytest.mark.parametrize("presented", ["none", "forged"])
def test_no_key_or_a_forged_key_gets_nothing(presented, operations, live_api):
    headers = {} if presented == "none" else {"X-API-Key": FORGED}

    def check(op, case, response) -> str | None:
        if problem := no_server_error(op, case, response):
            return problem
        if op.path.startswith("/api") and response.status_code < 300:
            return f"auth bypass: {response.status_code} without a valid key"
        return None

    failures, statuses = fuzz(operations, live_api, headers, check)
    assert not failures, "\n".join(failures[:20])
    assert statuses[401] >= len(operations)


def test_a_viewer_changes_nothing(operations, live_api, fresh_key, client):
    # Something to read and to try to change.
    admin = {"X-API-Key": fresh_key("admin")}
    viewer = fresh_key("viewer")
    created = client.post("/api/pipelines", headers=admin, json={
        "name": "fuzz-viewer-target", "kafka_topic": "fuzz-viewer-target",
        "schema": [{"name": "txn_id", "type": "string", "nullable": False},
                   {"name": "amount", "type": "float", "nullable": False}]})
    assert created.status_code in (201, 409), created.text
    before = catalog_fingerprint()

    def check(op, case, response) -> str | None:
        if problem := no_server_error(op, case, response):
            return problem
        mutating = case.method.upper() in MUTATING and op.path not in READ_ONLY_POSTS
        if mutating and response.status_code < 300:
            return f"a viewer changed something: {response.status_code}"
        return None

    failures, statuses = fuzz(operations, live_api, {"X-API-Key": viewer}, check)
    assert not failures, "\n".join(failures[:20])
    assert still_valid(live_api, viewer) and statuses[403] >= 1
    assert catalog_fingerprint() == before, "the catalog changed during the viewer's requests"


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


# Each request that answered 5xx (or a library dump) in the attack on a live stack, sent raw.
ISSUE_REGRESSIONS = [
    ("GET", "/api/alerts/%00", None, 422),
    ("GET", f"/api/alerts?cursor={_cursor(['2024-01-01T00:00:00', 1e400])}", None, 422),
    ("POST", "/api/pipelines/{pid}/rules", b'{"rule_expression": "amount > 1\\ud800"}', 422),
    ("POST", "/api/pipelines/{pid}/rules",
     b'{"rule_expression": "amount > 1", "description": "\\ud800"}', 422),
    ("POST", "/api/pipelines/{pid}/rules",
     b'{"rule_expression": "amount > 1", "description": "a\\u0000b"}', 422),
    ("POST", "/api/pipelines", b'{"name": "\\ud800", "kafka_topic": "t-sur", "schema": '
     b'[{"name": "txn_id", "type": "string"}]}', 422),
    ("POST", "/api/pipelines", b'{"name": "a\\u0000", "kafka_topic": "t-nul", "schema": '
     b'[{"name": "txn_id", "type": "string"}]}', 422),
    ("GET", "/api/audit?entity=%00", None, 422),
    ("POST", "/api/pipelines", b'{"name": "dot", "kafka_topic": ".", "schema": '
     b'[{"name": "txn_id", "type": "string"}]}', 422),
    ("POST", "/api/pipelines", b'{"name": "dotdot", "kafka_topic": "..", "schema": '
     b'[{"name": "txn_id", "type": "string"}]}', 422),
    ("POST", "/api/pipelines/{pid}/rules",
     b'{"rule_expression": "length(repeat(\'a\', 1000000000)) > 0"}', 422),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), ISSUE_REGRESSIONS)
def test_each_reported_5xx_is_now_a_clear_4xx(method, path, body, expected, live_api,
                                              fresh_key, client):
    admin = fresh_key("admin")
    created = client.post("/api/pipelines", headers={"X-API-Key": admin}, json={
        "name": "fuzz-regressions", "kafka_topic": "fuzz-regressions",
        "schema": [{"name": "txn_id", "type": "string", "nullable": False},
                   {"name": "amount", "type": "double", "nullable": False}]})
    assert created.status_code in (201, 409), created.text
    with get_engine().connect() as conn:
        pid = conn.execute(text("select id from pipelines where name = 'fuzz-regressions'"))\
            .scalar_one()
    response = requests.request(
        method, live_api + path.format(pid=pid), data=body, timeout=30,
        headers={"X-API-Key": admin, "content-type": "application/json"})
    assert response.status_code == expected, response.text
    assert "Traceback" not in response.text and "kafka.protocol" not in response.text
    assert isinstance(response.json()["detail"], list | str)
