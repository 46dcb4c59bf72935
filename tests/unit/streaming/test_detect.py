"""The detect path's projection on small DataFrames: one alert message per (valid event, rule),
keyed by event id, carrying what every sink needs; new rules guarded by their save time."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from streaming.alerts import alert_id, message_row
from streaming.detect import alert_records, alerts_topic, guarded
from streaming.pipeline import Pipeline
from streaming.rules import Rule

pytestmark = pytest.mark.unit

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "currency", "type": "string", "nullable": True},
    {"name": "event_time", "type": "timestamp", "nullable": True},
]
PIPELINE = Pipeline(7, "p", "t", "active", SCHEMA, 2, "transaction_id")
EVENTS = [
    {"transaction_id": "a", "amount": 9000.0, "currency": "O'Brien",
     "event_time": "2026-03-01T09:59:00Z"},
    {"transaction_id": "b", "amount": 10.0, "currency": "USD"},
    {"transaction_id": "c", "amount": 6000.0, "currency": None},
]
RULES = [
    Rule(1, "amount > 5000", "critical", 90.0, "big", 3),
    Rule(2, "currency = 'O''Brien'", "info", None, None, 1),
]


def _values() -> list[bytes]:
    return [json.dumps(e).encode() for e in EVENTS] + [b"not json", b'{"amount": 1}']


def test_one_message_per_valid_event_and_matching_rule(kafka_df):
    rows = alert_records(kafka_df(_values()), PIPELINE, RULES).collect()
    want = {(r.id, e["transaction_id"]) for e in EVENTS for r in RULES
            if (r.id == 1 and e["amount"] > 5000) or (r.id == 2 and e["currency"] == "O'Brien")}
    got = {(json.loads(r["value"])["rule_id"], r["key"]) for r in rows}
    assert got == want and len(rows) == len(want)  # the two invalid records never alert


def test_the_message_carries_the_alert_and_its_event(kafka_df):
    rows = alert_records(kafka_df(_values()), PIPELINE, RULES).collect()
    by_key = {(r["key"], json.loads(r["value"])["rule_id"]): json.loads(r["value"]) for r in rows}
    msg = by_key[("a", 1)]
    assert msg["alert_id"] == alert_id(7, 1, 3, "a")
    assert (msg["pipeline_id"], msg["rule_version"], msg["severity"], msg["score"],
            msg["rule_description"]) == (7, 3, "critical", 90.0, "big")
    assert msg["event_time"] == "2026-03-01T09:59:00.000000Z"
    assert msg["transaction_data"] == {"transaction_id": "a", "amount": 9000.0,
                                       "currency": "O'Brien",
                                       "event_time": "2026-03-01T09:59:00.000Z"}
    assert (msg["kafka_partition"], msg["kafka_offset"]) == (0, 0)
    # No event time: the Kafka record's time stands in (as on every path).
    assert by_key[("c", 1)]["event_time"] == "2026-03-01T10:00:00.000000Z"


def test_message_row_is_what_the_sinks_take():
    value = json.dumps({"alert_id": "x", "pipeline_id": 1, "rule_id": 2, "rule_version": 1,
                        "severity": "info", "event_id": "e", "event_time": "2026-03-01T10:00:00Z",
                        "transaction_data": {"b": 1, "a": None}, "kafka_partition": 0,
                        "kafka_offset": 5}).encode()
    row = message_row(value, 1_772_359_200_250)
    assert row["score"] is None and row["rule_description"] is None  # absent = null
    assert json.loads(row["transaction_data"]) == {"b": 1, "a": None}
    assert row["alert_timestamp"] == "2026-03-01T10:00:00.250000+00:00"


def test_a_guarded_rule_ignores_records_from_before_its_save(kafka_df, spark):
    saved = dt.datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=dt.UTC)
    rule = guarded(Rule(1, "amount > 5000", "critical", None, None, 1, saved))
    assert rule.id == 1 and "TIMESTAMP '2026-03-01 10:00:00.500000'" in rule.expression
    # kafka_df stamps its records 10:00:00.000, before the save: no alert.
    assert alert_records(kafka_df(_values()), PIPELINE, [rule]).count() == 0
    earlier = guarded(Rule(1, "amount > 5000", "critical", None, None, 1,
                           saved - dt.timedelta(seconds=1)))
    assert alert_records(kafka_df(_values()), PIPELINE, [earlier]).count() == 2
    assert guarded(RULES[0]) == RULES[0]  # no save time: unchanged


def test_alerts_topic_is_unique_per_events_topic_and_legal():
    assert alerts_topic("sentinel-alerts.", "payments") == "sentinel-alerts.payments"
    long_a, long_b = "a" * 249, "a" * 248 + "b"
    assert len(alerts_topic("sentinel-alerts.", long_a)) <= 249
    assert alerts_topic("sentinel-alerts.", long_a) != alerts_topic("sentinel-alerts.", long_b)


def test_no_rules_no_detect_query(spark):
    from streaming.detect import Detector
    from streaming.pipeline import Paths

    detector = Detector(spark, PIPELINE, Paths("/nonexistent", "p"), bootstrap="127.0.0.1:1",
                        topic_out="out", interval="30 seconds")
    detector.start([])  # a real-time query with no rule is refused by Spark: none is started
    assert detector.query is None and detector.failure() is None
    detector.stop()
