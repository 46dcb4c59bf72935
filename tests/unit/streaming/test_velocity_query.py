"""The velocity query's streaming plan builds each arrival's alert messages (the batch sink only
writes them), and the SQL settings the query starts with."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from catalog.settings import get_settings
from streaming.alerts import alert_id
from streaming.pipeline import Paths, Pipeline
from streaming.rules import Rule
from streaming.velocity import ALERTS, V1_SOURCES, VelocityQuery, with_conditions
from streaming.velocity_processors import OUTPUT_SCHEMA
from streaming.velocity_rules import compile_rules
from tests.velocity_streams import RULES, SCHEMA

pytestmark = pytest.mark.unit

PIPELINE = Pipeline(7, "cards", "cards", "active", SCHEMA, 1, "txn_id")


def _evaluation(kind: str, reeval: bool, kf: str, offset: int, event: dict, vals: dict):
    raw = json.dumps(event)
    return (kind, reeval, 0, kf, 0, offset, event["txn_id"], raw,
            datetime(2026, 3, 2, 9, 0, 1), None if not reeval else raw, vals)


def test_arrivals_carry_their_alert_messages(spark):
    """Rule 1 (count(*) per account ≥ 4) and rule 2 (sum per card > 1000 and amount > 20):
    an arrival whose terms pass gets one message per rule it matches, a re-evaluation and a
    too-late record none; ids and fields are the alert format's."""
    rules = [Rule(c.id, c.expression, "high", 2.5, f"rule {c.id}", 3) for c in RULES[:2]]
    compiled = compile_rules(rules, SCHEMA, PIPELINE.fields)
    assert not compiled.errors
    account = compiled.terms["account"][0].column
    card = compiled.terms["card_id"][0].column
    event = {"txn_id": "e1", "account": "a1", "card_id": "c1", "merchant": "m1",
             "amount": 400.0, "ts": "2026-03-02T09:00:00.250Z"}
    small = {**event, "txn_id": "e2", "amount": 10.0}
    rows = [
        _evaluation("eval", False, "account", 1, event, {account: 4.0}),  # rule 1 matches
        _evaluation("eval", False, "card_id", 1, event, {card: 1200.0}),  # rule 2 matches
        _evaluation("eval", False, "account", 2, small, {account: 3.0}),  # no match
        _evaluation("eval", False, "card_id", 2, small, {card: 1210.0}),  # amount too small
        _evaluation("eval", True, "account", 1, event, {account: 5.0}),  # re-evaluation
        ("late", False, 0, "account", 0, 3, "e3", json.dumps({**event, "txn_id": "e3"}),
         datetime(2026, 3, 2, 9, 0, 2), None, None),
    ]
    out = with_conditions(spark.createDataFrame(rows, OUTPUT_SCHEMA), PIPELINE, compiled)
    got = {(r["kf"], r["o"], r["reeval"], r["kind"]): r[ALERTS] for r in out.collect()}

    assert got[("account", 2, False, "eval")] == []
    assert got[("card_id", 2, False, "eval")] == []
    assert got[("account", 1, True, "eval")] is None
    assert got[("account", 3, False, "late")] is None
    for kf, rule_id in (("account", 1), ("card_id", 2)):
        [text] = got[(kf, 1, False, "eval")]
        message = json.loads(text)
        assert message["alert_id"] == alert_id(7, rule_id, 3, "e1")
        assert (message["rule_id"], message["rule_version"], message["severity"],
                message["score"], message["rule_description"]) == (rule_id, 3, "high", 2.5,
                                                                   f"rule {rule_id}")
        assert (message["event_id"], message["kafka_partition"], message["kafka_offset"],
                message["late"]) == ("e1", 0, 1, False)
        assert message["transaction_data"]["amount"] == 400.0
        assert message["event_time"].startswith("2026-03-02T09:00:00.250000")


def test_query_settings(spark, tmp_path, monkeypatch):
    """Its state partitions, its RocksDB block cache (from the settings) without a row count
    (a lookup before every write), and Kafka written through the V2 path (where the batch's
    observed counts are handed over); the other V1 sources stay."""
    monkeypatch.setenv("SENTINEL_VELOCITY_STATE_CACHE_MB", "96")
    get_settings.cache_clear()
    query = VelocityQuery(spark, PIPELINE, Paths(str(tmp_path), "cards"), bootstrap="kafka:9092",
                          topic_out="cards-alerts", trigger=0.5, max_offsets=100,
                          lateness_seconds=60, engine="python", state_partitions=3)
    get_settings.cache_clear()
    conf = query.conf()
    assert conf["spark.sql.shuffle.partitions"] == "3"
    assert conf["spark.sql.streaming.stateStore.rocksdb.blockCacheSizeMB"] == "96"
    assert conf["spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows"] == "false"
    before = {s.strip().lower() for s in spark.conf.get(V1_SOURCES).split(",")}
    assert "kafka" in before
    assert set(conf[V1_SOURCES].split(",")) == before - {"kafka"}


def test_batch_counts_observed_or_counted(spark, tmp_path, monkeypatch, caplog):
    """A batch's counts (too-late records once however many key fields, arrivals'
    evaluations, re-evaluations) come from the observation when the batch's write completes
    it, and from the cached rows, with a warning, when it never does."""
    from pyspark.sql import Observation

    from streaming import velocity
    from streaming.velocity import VelocityBatch

    rules = [Rule(c.id, c.expression, "high", 2.5, None, 1) for c in RULES[:2]]
    compiled = compile_rules(rules, SCHEMA, PIPELINE.fields)
    batch = VelocityBatch(spark, PIPELINE, Paths(str(tmp_path), "cards"), compiled,
                          bootstrap="kafka:9092", topic_out="cards-alerts")
    kinds = [("late", False, kf) for kf in compiled.key_fields]  # one too-late record
    kinds += [("eval", False, "account")] * 3 + [("eval", True, "card_id")]
    out = spark.createDataFrame(kinds, "kind string, reeval boolean, kf string")
    expected = {"late": 1, "arrived": 3, "again": 1}

    observation = Observation("completed")
    out.observe(observation, *batch._count_columns()).write.format("noop").mode(
        "overwrite").save()
    assert batch._observed(observation, out) == expected

    monkeypatch.setattr(velocity, "OBSERVATION_WAIT_SECONDS", 0.5)
    never = Observation("never")
    out.observe(never, *batch._count_columns())  # no action: never completed
    with caplog.at_level("WARNING", logger="streaming.velocity"):
        assert batch._observed(never, out) == expected
    assert "not observed" in caplog.text
