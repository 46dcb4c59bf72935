"""The fan-out's batch of one poll and the local task slots of a stream process (plain data)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from streaming.fanout import batch_rows, group_id
from streaming.session import local_slots

pytestmark = pytest.mark.unit


def _record(alert: str, offset: int, ts: int) -> SimpleNamespace:
    value = json.dumps({"alert_id": alert, "pipeline_id": 1, "rule_id": 1, "rule_version": 1,
                        "severity": "info", "event_id": f"e-{alert}", "transaction_data": {}})
    return SimpleNamespace(value=value.encode(), timestamp=ts, offset=offset, partition=0)


def test_a_repeated_alert_in_one_poll_is_written_once_with_its_first_time():
    rows = batch_rows([_record("a", 0, 1000), _record("b", 1, 2000), _record("a", 2, 9000)])
    assert [r["alert_id"] for r in rows] == ["a", "b"]
    assert rows[0]["alert_timestamp"] == "1970-01-01T00:00:01+00:00"


def test_group_ids_follow_the_alerts_topic():
    assert group_id("sentinel-alerts.payments") == "sentinel-fanout.sentinel-alerts.payments"


def test_local_star_is_widened_to_the_slots_real_time_queries_hold():
    assert local_slots("local[*]", 64) == "local[64]"
    assert local_slots("local[*]", 1).startswith("local[")
    assert local_slots("local[2]", 64) == "local[2]"
    assert local_slots("spark://host:7077", 64) == "spark://host:7077"
