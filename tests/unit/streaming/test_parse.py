"""Parsing Kafka records into typed events and quarantine reasons."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from streaming.parse import parse_kafka, quarantine_rows, valid_events
from streaming.schema import event_time_field, fields_of

pytestmark = pytest.mark.unit

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "user_id", "type": "integer", "nullable": True},
    {"name": "timestamp", "type": "timestamp", "nullable": True},
    {"name": "day", "type": "date", "nullable": True},
    {"name": "flag", "type": "boolean", "nullable": True},
]
FIELDS = fields_of(SCHEMA)


def _parse(kafka_df, values, key_field="transaction_id"):
    parsed = parse_kafka(kafka_df(values), FIELDS, key_field=key_field, schema_version=7)
    parsed = parsed.cache()
    valid = {r["_kafka_offset"]: r.asDict() for r in valid_events(parsed, FIELDS).collect()}
    bad = {r["kafka_offset"]: r.asDict() for r in quarantine_rows(parsed, FIELDS).collect()}
    return valid, bad


def _j(**kw) -> bytes:
    return json.dumps(kw).encode()


CASES = [
    (_j(transaction_id="t", amount="abc"), "wrong_type: amount"),
    (_j(amount=1), "missing_required: transaction_id"),
    (_j(transaction_id="t", amount=None), "missing_required: amount"),
    (b"{not json", "invalid_json"),
    (b"", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b"42", "not_an_object"),
    (b"\xff\xfe{}", "invalid_utf8"),
    (None, "empty_value"),
    (_j(transaction_id="t", amount=1, user_id=1.5), "wrong_type: user_id"),
    (_j(transaction_id="t", amount=1, user_id=2**31), "wrong_type: user_id"),
    (_j(transaction_id="t", amount=1, user_id="5"), "wrong_type: user_id"),
    (_j(transaction_id="t", amount=1, timestamp=1700000000), "wrong_type: timestamp"),
    (_j(transaction_id="t", amount=1, timestamp="yesterday"), "wrong_type: timestamp"),
    (_j(transaction_id="t", amount=1, day="2026-13-01"), "wrong_type: day"),
    (_j(transaction_id="t", amount=1, flag="true"), "wrong_type: flag"),
    (b'{"transaction_id": "t", "amount": 1e400}', "wrong_type: amount"),
    (_j(transaction_id="t", amount="NaN"), "wrong_type: amount"),
    (_j(amount="x", user_id="y"), "wrong_type: amount, user_id; missing_required: transaction_id"),
]


def test_quarantine_reasons(kafka_df):
    valid, bad = _parse(kafka_df, [v for v, _ in CASES])
    assert valid == {}
    assert {off: row["reason"] for off, row in bad.items()} == {
        i: reason for i, (_, reason) in enumerate(CASES)
    }
    first = bad[0]
    assert first["raw_value"] == CASES[0][0]
    assert (first["topic"], first["kafka_partition"]) == ("t", 0)
    assert first["kafka_timestamp"] == dt.datetime(2026, 3, 1, 10, 0)


def test_valid_events_are_typed_with_metadata(kafka_df):
    values = [
        _j(transaction_id="a", amount=12.5, user_id=3, timestamp="2026-01-02T03:04:05.120Z",
           day="2026-01-02", flag=True, extra="ignored"),
        _j(transaction_id="b", amount=7, timestamp="2026-01-02 23:30:00+02:00"),
        _j(transaction_id="c", amount=1, user_id=None),
    ]
    valid, bad = _parse(kafka_df, values)
    assert bad == {}
    a, b, c = valid[0], valid[1], valid[2]
    assert a["amount"] == 12.5 and a["user_id"] == 3 and a["flag"] is True
    assert a["timestamp"] == dt.datetime(2026, 1, 2, 3, 4, 5, 120000)
    assert a["day"] == dt.date(2026, 1, 2)
    assert a["_event_id"] == "a" and a["_schema_version"] == 7
    assert (a["_kafka_partition"], a["_kafka_offset"]) == (0, 0)
    assert a["event_date"] == dt.date(2026, 1, 2)  # from the event's own time
    assert b["timestamp"] == dt.datetime(2026, 1, 2, 21, 30)  # offset applied, UTC
    assert b["amount"] == 7.0
    assert c["user_id"] is None and c["timestamp"] is None
    assert c["event_date"] == dt.date(2026, 3, 1)  # falls back to the Kafka timestamp


def test_event_id_falls_back_to_coordinates(kafka_df):
    valid, _ = _parse(kafka_df, [_j(transaction_id="x", amount=1)], key_field=None)
    expected = hashlib.sha256(b"t|0|0").hexdigest()
    assert valid[0]["_event_id"] == expected


def test_event_time_field_choice():
    assert event_time_field(FIELDS) == "timestamp"
    other = fields_of([{"name": "created_time", "type": "timestamp", "nullable": True}])
    assert event_time_field(other) == "created_time"
    assert event_time_field(fields_of([{"name": "ts_str", "type": "string"}])) is None
