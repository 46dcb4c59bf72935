"""The lake path on small in-memory Kafka batches: bronze, quarantine and silver alerts hold
each record once, whether an archive batch is replayed or the alerts topic repeats an alert."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from streaming.archive import BatchContext, ensure_tables, process_batch
from streaming.detect import alert_records
from streaming.parse import KAFKA_SCHEMA
from streaming.pipeline import Paths, load_pipeline
from streaming.producer import generate_events
from streaming.rules import Rule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ALERTS = "sentinel-alerts.it-archive"
NOW = dt.datetime(2026, 3, 1, 12, 0, 0)


def _rules(tp) -> list[Rule]:
    rows = tp.rule_rows()
    return [Rule(s.id, s.expression, s.severity, s.score, rows[s.id].description, 1)
            for s in tp.rules if s.predicate]


@pytest.fixture()
def lake(make_pipeline, spark_reader, kit, tmp_path):
    tp = make_pipeline(kit.base_rules())
    events = generate_events(kit.SCHEMA, 300, 7, anomaly_share=0.3, malformed_share=0.05,
                             id_prefix=f"{tp.topic}-a")
    tp.sent.extend(events)
    pipeline = load_pipeline(tp.id)
    warehouse = str(tmp_path / "warehouse")
    ctx = BatchContext(pipeline, Paths(warehouse, pipeline.slug), ALERTS, query_id="it-archive")
    ensure_tables(spark_reader, ctx)
    rows = [(e.key, e.value, tp.topic, 0, i, NOW, 0) for i, e in enumerate(events)]
    frame = spark_reader.createDataFrame(rows, KAFKA_SCHEMA)
    messages = alert_records(frame, pipeline, _rules(tp)).collect()
    return tp, ctx, frame, messages, warehouse


def _alerts_frame(spark, messages, first_offset: int):
    rows = [(m["key"].encode(), m["value"].encode(), ALERTS, 0, first_offset + i, NOW, 0)
            for i, m in enumerate(messages)]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def _check_lake(spark, tp, warehouse: str, kit) -> None:
    base = f"{warehouse}/bronze/pipeline_{tp.id}"
    valid = {e.event["transaction_id"] for e in tp.sent if e.event}
    bronze = [r[0] for r in spark.read.format("delta").load(f"{base}/events")
              .select("_event_id").collect()]
    assert sorted(bronze) == sorted(valid)
    quarantine = spark.read.format("delta").load(f"{base}/quarantine").collect()
    got_q = Counter((bytes(r["raw_value"]) if r["raw_value"] is not None else None,
                     kit.reason_kind(r["reason"])) for r in quarantine)
    assert got_q == kit.expected_quarantine(tp.sent)
    silver = spark.read.format("delta").load(f"{warehouse}/silver/pipeline_{tp.id}/alerts")
    rows = silver.select("alert_id", "rule_id", "event_id", "alert_timestamp").collect()
    assert len({r["alert_id"] for r in rows}) == len(rows)
    assert {(r["rule_id"], r["event_id"]) for r in rows} == kit.expected_alerts(tp)
    assert {r["alert_timestamp"] for r in rows} == {NOW}


@pytest.mark.parametrize("small_batch_rows", [0, 10**9], ids=["wide", "small-after-first"])
def test_a_replayed_batch_and_repeated_alerts_change_nothing(lake, spark_reader, kit,
                                                             small_batch_rows):
    """Both ways a batch runs: wide (every slot, writes side by side) and small (one task,
    writes one after another; a batch after a small one)."""
    tp, ctx, frame, messages, warehouse = lake
    ctx.small_batch_rows = small_batch_rows
    assert messages and len(messages) == len(kit.expected_alerts(tp))
    half = len(messages) // 2
    batch0 = frame.unionByName(_alerts_frame(spark_reader, messages[:half], 0))
    first = process_batch(batch0, 0, ctx=ctx)
    assert (first["rows"], first["alerts"], first["small"]) == (len(tp.sent), half, False)
    again = process_batch(batch0, 0, ctx=ctx)  # the same batch again (a crash before its commit)
    assert again["small"] is bool(small_batch_rows)
    # The detect path's Kafka sink is at-least-once: the next batch repeats the first half.
    batch1 = _alerts_frame(spark_reader, messages, half)
    assert process_batch(batch1, 1, ctx=ctx)["small"] is bool(small_batch_rows)
    _check_lake(spark_reader, tp, warehouse, kit)
