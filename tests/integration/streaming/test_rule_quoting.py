"""A rule stored through the API as ``currency = 'O''Brien'`` alerts on the event whose currency
is ``O'Brien`` in the live engine, and not on look-alike values (the doubled quote is one
literal quote, never two concatenated literals)."""

from __future__ import annotations

import json

import pytest

from streaming.producer import GeneratedEvent
from tests.support import auth

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


def event(transaction_id: str, currency: str, merchant: str) -> GeneratedEvent:
    body = {"transaction_id": transaction_id, "user_id": 7, "amount": 12.5,
            "currency": currency, "merchant": merchant, "is_card_present": True,
            "event_time": "2024-06-01T10:00:00.000Z"}
    return GeneratedEvent(value=json.dumps(body).encode(), key=transaction_id.encode(),
                          event=body, malformed=None, anomalous=False)


def test_doubled_quotes_alert_on_the_quoted_value(make_pipeline, job_factory, spark_reader, kit,
                                                  tmp_path, client, api_keys):
    warehouse = str(tmp_path / "warehouse")
    tp = make_pipeline([])
    wanted = [
        ("currency = 'O''Brien'", lambda e: e["currency"] == "O'Brien"),
        ("merchant LIKE '%''s%'", lambda e: "'s" in e["merchant"]),
    ]
    for expression, predicate in wanted:
        created = client.post(f"/api/pipelines/{tp.id}/rules", headers=auth(api_keys["analyst"]),
                              json={"rule_expression": expression, "severity": "warning"})
        assert created.status_code == 201, created.text
        tp.rules.append(kit.RuleSpec(expression, "warning", None, predicate,
                                     id=created.json()["id"]))
    tp.produce([
        event(f"{tp.topic}-1", "O'Brien", "Joe's diner"),
        event(f"{tp.topic}-2", "OBrien", "plain"),  # what CONCAT('O', 'Brien') would match
        event(f"{tp.topic}-3", "O''Brien", "two''quotes"),
        event(f"{tp.topic}-4", "O\\'Brien", "joes"),
    ])
    expected = kit.expected_alerts(tp)
    assert expected == {(tp.rules[0].id, f"{tp.topic}-1"), (tp.rules[1].id, f"{tp.topic}-1")}
    checkpoint = kit.archive_checkpoint(tmp_path / "warehouse", tp.id)
    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": warehouse})
    job.start()
    kit.wait_for(lambda: kit.committed_offsets(checkpoint) == len(tp.sent), 900,
                 "the events committed", job)
    assert all(row.state == "ok" for row in tp.rule_rows().values())
    kit.check_sinks(spark_reader, tp, warehouse, expected)
