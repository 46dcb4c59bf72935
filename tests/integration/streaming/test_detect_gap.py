"""A rule that joins the detect query at a restart judges every record that reached Kafka after
its save, including those the old query committed before the restart (``gap_records``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaProducer

from streaming.detect import gap_records
from streaming.pipeline import load_pipeline
from streaming.producer import generate_events
from streaming.rules import Rule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_gap_records_judge_exactly_the_records_after_the_save(make_pipeline, spark_reader,
                                                               kit):
    tp = make_pipeline([])
    saved = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    before, after = (generate_events(kit.SCHEMA, 120, seed, anomaly_share=0.3,
                                     malformed_share=0.05, id_prefix=f"{tp.topic}-{seed}")
                     for seed in (1, 2))
    producer = KafkaProducer(bootstrap_servers=kit.BOOTSTRAP)
    for events, at in ((before, saved - timedelta(seconds=30)),
                       (after, saved + timedelta(seconds=1))):
        ms = int(at.timestamp() * 1000)
        for i, e in enumerate(events):
            producer.send(tp.topic, key=e.key, value=e.value, timestamp_ms=ms + i)
    producer.flush()
    producer.close()
    tp.sent.extend(before + after)

    spec = kit.RuleSpec("amount > 5000", "critical", 90.0, lambda e: e["amount"] > 5000)
    rule = Rule(7001, spec.expression, spec.severity, spec.score, None, 1, saved)
    spec.id = rule.id
    pipeline = load_pipeline(tp.id)
    records = gap_records(spark_reader, pipeline, [rule], bootstrap=kit.BOOTSTRAP)
    assert records is not None
    got = {(json.loads(r["value"])["rule_id"], r["key"]) for r in records.collect()}
    want = kit.expected_alerts(tp, after, [spec])
    assert want and got == want
    # a rule without a save time judges no gap; an unsaved one never joins by a restart
    assert gap_records(spark_reader, pipeline, [Rule(7002, "true", "info", None, None, 1)],
                       bootstrap=kit.BOOTSTRAP) is None
