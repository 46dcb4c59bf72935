"""Drill: poison records between valid events.

Not JSON, JSON that is not an object, 10,000 nested arrays (alone and inside an event), 1 MB
values, wrong types, NaN, invalid UTF-8, empty messages and a null message value (a Kafka
tombstone) go to quarantine with a reason; the stream never stops or restarts, the valid
events around them (one of them with a 1 MB string, which the schema allows) reach bronze and
the rules, and every sink holds each record exactly once.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from streaming.producer import GeneratedEvent, generate_events

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]

DEEP = 10_000
MB = 1_000_000  # a value of 1 MB that still fits Kafka's default 1 MiB message limit


def _event(i: int, **fields) -> dict:
    return {"transaction_id": f"poison-{i}", "user_id": 7, "amount": 12.5, "currency": "EUR",
            "merchant": "bravo-1", "is_card_present": True,
            "event_time": "2026-01-15T12:00:00.000Z", **fields}


def poison(topic: str) -> list[GeneratedEvent]:
    """(raw bytes, the quarantine reason the contract gives) for each poison record."""
    nested = b"[" * DEEP + b"]" * DEEP
    in_event = json.dumps(_event(0, merchant="@")).encode().replace(b'"@"', nested)
    cases: list[tuple[bytes, str]] = [
        (b"this is not json {", "invalid_json"),
        (b"{\"transaction_id\": \"x\", ", "invalid_json"),
        (b"", "invalid_json"),  # an empty message is not a JSON document
        (b"[1, 2, 3]", "not_an_object"),
        (b"\"just a string\"", "not_an_object"),
        (b"42", "not_an_object"),
        # Valid JSON, but deeper than the parser's nesting limit (Jackson: 1000): unreadable.
        (nested, "invalid_json"),
        (in_event, "invalid_json"),
        (b"x" * MB, "invalid_json"),
        (json.dumps(_event(1, amount="9" * MB)).encode(), "wrong_type"),
        (json.dumps(_event(2, amount="abc")).encode(), "wrong_type"),
        (json.dumps(_event(3, user_id=1.5)).encode(), "wrong_type"),
        (json.dumps(_event(4, is_card_present="yes")).encode(), "wrong_type"),
        (json.dumps(_event(5, event_time=1_768_478_400)).encode(), "wrong_type"),
        (json.dumps(_event(6, user_id="12")).encode(), "wrong_type"),
        (json.dumps(_event(7)).encode().replace(b"12.5", b"NaN"), "wrong_type"),
        (json.dumps({k: v for k, v in _event(8).items() if k != "amount"}).encode(),
         "missing_required"),
        (json.dumps(_event(9)).encode().replace(b"poison-9", b"bad-\xff\xfe-utf8"),
         "invalid_utf8"),
        (b"\xc3\x28\xa0\xa1", "invalid_utf8"),
    ]
    return [GeneratedEvent(raw, f"{topic}-poison-{i}".encode(), None, reason, False)
            for i, (raw, reason) in enumerate(cases)]


def test_poison_records_are_quarantined_and_the_stream_keeps_running(
        make_pipeline, job_factory, spark_reader, kit, tmp_path, report):
    from kafka import KafkaProducer

    warehouse = str(tmp_path / "warehouse")
    tp = make_pipeline(kit.base_rules()[:6])
    checkpoint = kit.archive_checkpoint(tmp_path / "warehouse", tp.id)
    valid = generate_events(kit.SCHEMA, 200, 21, anomaly_share=0.3, malformed_share=0.0,
                            id_prefix=tp.topic)
    big = _event(100, transaction_id=f"{tp.topic}-big", merchant="alpha" + "m" * (MB - 300),
                 user_id=42)
    valid.append(GeneratedEvent(json.dumps(big).encode(), big["transaction_id"].encode(),
                                big, None, False))
    bad = poison(tp.topic)
    mixed = list(valid)
    rng = random.Random(tp.id)
    for rec in bad:  # poison scattered between the valid events
        mixed.insert(rng.randrange(len(mixed) + 1), rec)

    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": warehouse})
    job.start(max_offsets=120)
    # Half before the stream runs, half while it runs; then one Kafka tombstone (null value).
    tp.produce(mixed[: len(mixed) // 2])
    kit.wait_for(lambda: kit.committed_offsets(checkpoint) > 0, 600, "first batch", job)
    started = time.monotonic()
    tp.produce(mixed[len(mixed) // 2:])
    producer = KafkaProducer(bootstrap_servers="127.0.0.1:9092", acks="all")
    producer.send(tp.topic, value=None, key=b"tombstone").get(timeout=30)
    producer.close()
    tp.sent.append(GeneratedEvent(None, b"tombstone", None, "empty_value", False))
    total = len(mixed) + 1
    caught_up = kit.wait_for(lambda: kit.committed_offsets(checkpoint) == total, 900,
                             "catch-up past the poison", job)
    report(records=total, poison=len(bad) + 1, catch_up_seconds=round(caught_up, 1),
           since_first_batch_seconds=round(time.monotonic() - started, 1))

    assert job.alive(), job.log_tail()
    kit.check_sinks(spark_reader, tp, warehouse, kit.expected_alerts(tp))
    quarantine = spark_reader.read.format("delta").load(
        f"{warehouse}/bronze/pipeline_{tp.id}/quarantine")
    tomb = quarantine.where("raw_value IS NULL").collect()
    assert [r["reason"] for r in tomb] == ["empty_value"]
    assert quarantine.count() == len(bad) + 1
    reasons = {r["reason"] for r in quarantine.select("reason").collect()}
    assert all(r for r in reasons)  # every record says why
    log = job.log_path.read_text()
    assert "retrying in" not in log and "query failed" not in log, job.log_tail()
    runs = tp.runs()
    assert len(runs) == 1 and runs[0].input_rows == total, runs  # one run, never restarted
