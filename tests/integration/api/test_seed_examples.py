"""The seed's curl examples, run as written (plus an API key) against a live API process.

Each example is the seed README's command verbatim; the test adds `-s -H "X-API-Key: …"`,
points it at the test server and maps the seed's pipeline ids to the ids this run got.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient
from sqlalchemy import delete, or_

from catalog.db import get_engine
from catalog.settings import get_settings
from catalog.tables import pipelines

pytestmark = pytest.mark.integration

QUICK_START = [
    (
        "pipeline",
        """curl -X POST http://localhost:8000/api/pipelines \\
  -H "Content-Type: application/json" \\
  -d '{
    "name": "Payment Transactions",
    "kafka_topic": "transactions",
    "schema": [
      {"name": "transaction_id", "type": "string", "nullable": false},
      {"name": "user_id", "type": "integer", "nullable": false},
      {"name": "amount", "type": "float", "nullable": false},
      {"name": "currency", "type": "string", "nullable": false},
      {"name": "timestamp", "type": "timestamp", "nullable": false}
    ]
  }'""",
    ),
    (
        "rule",
        """curl -X POST http://localhost:8000/api/pipelines/1/rules \\
  -H "Content-Type: application/json" \\
  -d '{
    "rule_expression": "amount > 5000",
    "severity": "critical",
    "description": "Large Transaction Alert"
  }'""",
    ),
    (
        "rule",
        """curl -X POST http://localhost:8000/api/pipelines/1/rules \\
  -H "Content-Type: application/json" \\
  -d '{
    "rule_expression": "currency != '\\''USD'\\''",
    "severity": "warning",
    "description": "Non-USD Transaction"
  }'""",
    ),
]

MERCHANTS = [
    (
        "pipeline",
        """curl -X POST http://localhost:8000/api/pipelines \\
  -d '{
    "name": "Merchant A Payments",
    "kafka_topic": "merchant_a_txns",
    "schema": [
      {"name": "order_id", "type": "string", "nullable": false},
      {"name": "amount", "type": "float", "nullable": false},
      {"name": "buyer_ip", "type": "string", "nullable": true}
    ]
  }'""",
    ),
    (
        "pipeline",
        """curl -X POST http://localhost:8000/api/pipelines \\
  -d '{
    "name": "Merchant B Payments",
    "kafka_topic": "merchant_b_txns",
    "schema": [
      {"name": "order_id", "type": "string", "nullable": false},
      {"name": "amount", "type": "float", "nullable": false},
      {"name": "loyalty_points", "type": "integer", "nullable": true},
      {"name": "membership_tier", "type": "string", "nullable": true}
    ]
  }'""",
    ),
    (
        "rule",
        """curl -X POST http://localhost:8000/api/pipelines/1/rules \\
  -d '{
    "rule_expression": "amount > 5000",
    "severity": "critical"
  }'""",
    ),
    (
        "rule",
        """curl -X POST http://localhost:8000/api/pipelines/2/rules \\
  -d '{
    "rule_expression": "loyalty_points > 10000 AND membership_tier = '\\''BRONZE'\\''",
    "severity": "warning",
    "description": "Unusual point accumulation for low-tier member"
  }'""",
    ),
]

IOT = [
    (
        "pipeline",
        """curl -X POST http://localhost:8000/api/pipelines \\
  -d '{
    "name": "Factory Floor Sensors",
    "kafka_topic": "iot_readings",
    "schema": [
      {"name": "sensor_id", "type": "string", "nullable": false},
      {"name": "temperature", "type": "float", "nullable": false},
      {"name": "pressure", "type": "float", "nullable": false},
      {"name": "vibration", "type": "float", "nullable": false},
      {"name": "timestamp", "type": "timestamp", "nullable": false}
    ]
  }'""",
    ),
    (
        "rule",
        """curl -X POST http://localhost:8000/api/pipelines/3/rules \\
  -d '{
    "rule_expression": "temperature > 150 OR temperature < -20",
    "severity": "critical",
    "description": "Temperature outside safe operating range"
  }'""",
    ),
    (
        "rule",
        """curl -X POST http://localhost:8000/api/pipelines/3/rules \\
  -d '{
    "rule_expression": "temperature > 120 AND vibration > 50",
    "severity": "critical",
    "description": "Multiple anomalies detected - potential equipment failure"
  }'""",
    ),
]

CRYPTO = [
    (
        "pipeline",
        """curl -X POST http://localhost:8000/api/pipelines \\
  -d '{
    "name": "Crypto Withdrawals",
    "kafka_topic": "crypto_withdrawals",
    "schema": [
      {"name": "withdrawal_id", "type": "string", "nullable": false},
      {"name": "user_id", "type": "integer", "nullable": false},
      {"name": "amount_usd", "type": "float", "nullable": false},
      {"name": "crypto_type", "type": "string", "nullable": false},
      {"name": "wallet_address", "type": "string", "nullable": false},
      {"name": "is_new_wallet", "type": "boolean", "nullable": false}
    ]
  }'""",
    ),
    (
        "rule",
        """curl -X POST http://localhost:8000/api/pipelines/4/rules \\
  -d '{
    "rule_expression": "is_new_wallet = true AND amount_usd > 10000",
    "severity": "critical",
    "description": "First-time withdrawal to new wallet exceeds threshold"
  }'""",
    ),
    (
        "rule",
        """curl -X POST http://localhost:8000/api/pipelines/4/rules \\
  -d '{
    "rule_expression": "crypto_type IN ('\\''XMR'\\'', '\\''ZEC'\\'') AND amount_usd > 5000",
    "severity": "warning",
    "description": "Large privacy coin withdrawal"
  }'""",
    ),
]

# The seed numbers pipelines per section: quick start 1; use cases 1, 2 (merchants), 3 (IoT),
# 4 (crypto). Each section maps those numbers to the ids this run gets, in creation order.
SECTIONS = {
    "quick start": (QUICK_START, [1]),
    "use cases": (MERCHANTS + IOT + CRYPTO, [1, 2, 3, 4]),
}


def _names_and_topics(examples: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
    bodies = [json.loads(command[command.index("-d '") + 4:command.rindex("'")])
              for kind, command in examples if kind == "pipeline"]
    return {b["name"] for b in bodies}, {b["kafka_topic"] for b in bodies}


def _without_pipelines_like(examples: list[tuple[str, str]]) -> None:
    """The seed's examples start on a catalog that does not hold their pipelines yet: another
    test of this worker (the first-run checks run the demo) may have created one of them."""
    names, topics = _names_and_topics(examples)
    with get_engine().begin() as conn:
        conn.execute(delete(pipelines).where(or_(pipelines.c.name.in_(names),
                                                 pipelines.c.kafka_topic.in_(topics))))


def run_curl(command: str, base: str, key: str) -> Any:
    command = command.replace("http://localhost:8000", base)
    command = command.replace("curl ", f'curl -s -H "X-API-Key: {key}" ', 1)
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_seed_curl_examples_work_as_written(
    section: str, live_api: str, api_keys: dict[str, str]
) -> None:
    examples, seed_ids = SECTIONS[section]
    _without_pipelines_like(examples)
    actual: dict[int, int] = {}
    created_rules = []
    for kind, command in examples:
        if kind == "rule":
            seed_id = int(re.search(r"/api/pipelines/(\d+)/rules", command).group(1))  # type: ignore[union-attr]
            command = command.replace(
                f"/api/pipelines/{seed_id}/rules", f"/api/pipelines/{actual[seed_id]}/rules"
            )
        body = run_curl(command, live_api, api_keys["admin"])
        if kind == "pipeline":
            assert set(body) == {"id", "message"}, body
            assert body["message"] == "Pipeline created successfully"
            actual[seed_ids[len(actual)]] = body["id"]
        else:
            assert body["status"] == "Rule added successfully", body
            assert isinstance(body["id"], int)
            created_rules.append(body["id"])

    # The seed's read endpoints answer in the seed's shapes.
    listing = run_curl(f"curl {live_api}/api/pipelines", live_api, api_keys["viewer"])
    mine = [p for p in listing if p["id"] in actual.values()]
    assert len(mine) == len(seed_ids)
    for p in mine:
        for field in ("id", "name", "kafka_topic", "status", "created_at", "alert_count"):
            assert field in p
        assert p["status"] == "active" and p["alert_count"] == 0
    first = actual[seed_ids[0]]
    schema = run_curl(f"curl {live_api}/api/pipelines/{first}/schema", live_api, api_keys["viewer"])
    assert all(set(f) == {"name", "type", "nullable"} for f in schema)
    assert schema[0]["nullable"] is False

    # Every pipeline's topic exists on the real broker.
    admin = KafkaAdminClient(bootstrap_servers=get_settings().kafka_bootstrap_servers)
    try:
        topics = set(admin.list_topics())
    finally:
        admin.close()
    assert {p["kafka_topic"] for p in mine} <= topics

    # Toggle examples from the API reference.
    status = run_curl(
        f"""curl -X PATCH {live_api}/api/pipelines/{first}/status \\
  -H "Content-Type: application/json" -d '{{"status": "paused"}}'""",
        live_api,
        api_keys["admin"],
    )
    assert status["status"] == "paused"
    rule = run_curl(
        f"""curl -X PATCH {live_api}/api/rules/{created_rules[0]}/status \\
  -H "Content-Type: application/json" -d '{{"is_active": false}}'""",
        live_api,
        api_keys["admin"],
    )
    assert rule["is_active"] is False and rule["version"] == 2
    alerts = run_curl(f"curl {live_api}/api/alerts?limit=50", live_api, api_keys["viewer"])
    assert isinstance(alerts, list)
