"""``process_batch`` on a small in-memory Kafka frame: the order of its sinks and replays.

The serving sinks (Postgres, Redis) are written before the archive's Delta commits, so an
alert is visible as soon as the rules ran; a batch whose archive commit fails is replayed and
every sink then holds each record exactly once.
"""

from __future__ import annotations

import pytest

from catalog.db import get_engine
from catalog.settings import get_settings
from streaming import batch
from streaming.batch import KAFKA_SCHEMA, BatchContext, process_batch
from streaming.pipeline import Paths, load_pipeline
from streaming.producer import generate_events
from streaming.rules import RuleCache
from streaming.sinks.redis_sink import RedisAlertSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def kafka_frame(spark, events, topic: str):
    rows = [(e.key, e.value, topic, 0, offset, None, 0) for offset, e in enumerate(events)]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


@pytest.fixture()
def batch_setup(make_pipeline, spark_reader, kit, tmp_path):
    tp = make_pipeline(kit.base_rules())
    events = generate_events(kit.SCHEMA, 300, 7, anomaly_share=0.3, malformed_share=0.05,
                             id_prefix=f"{tp.topic}-b")
    tp.sent.extend(events)
    warehouse = str(tmp_path / "warehouse")
    pipeline = load_pipeline(tp.id)
    settings = get_settings()
    redis = RedisAlertSink.from_url(kit.REDIS_URL, ttl_seconds=3600,
                                    stream_maxlen=settings.redis_stream_maxlen)
    ctx = BatchContext(pipeline, Paths(warehouse, pipeline.slug), query_id="it-batch",
                       rules=RuleCache(tp.id), redis=redis)
    return tp, kafka_frame(spark_reader, events, tp.topic), ctx, warehouse


def test_a_replayed_batch_changes_nothing(batch_setup, spark_reader, kit):
    tp, frame, ctx, warehouse = batch_setup
    expected = kit.expected_alerts(tp)
    assert expected and any(e.malformed for e in tp.sent)
    first = process_batch(frame, 0, ctx=ctx)
    assert (first["alerts"], first["new_pg"], first["new_redis"]) == (len(expected),) * 3
    again = process_batch(frame, 0, ctx=ctx)
    assert (again["alerts"], again["new_pg"], again["new_redis"]) == (len(expected), 0, 0)
    kit.check_sinks(spark_reader, tp, warehouse, expected)


def test_alerts_are_served_before_the_archive_and_a_failed_archive_is_replayed(
        batch_setup, spark_reader, kit, monkeypatch):
    tp, frame, ctx, warehouse = batch_setup
    expected = kit.expected_alerts(tp)
    real_append = batch.delta.append
    appended: list[str] = []

    def bronze_down(df, path, *, table, **kw):
        if table == "events":
            raise RuntimeError("object store unavailable")
        appended.append(table)
        return real_append(df, path, table=table, **kw)

    monkeypatch.setattr(batch.delta, "append", bronze_down)
    with pytest.raises(RuntimeError, match="object store unavailable"):
        process_batch(frame, 0, ctx=ctx)
    # The serving sinks already hold the batch's alerts; bronze holds nothing yet, and the
    # other two archive appends ran to completion beside the failed one.
    assert sorted(appended) == ["alerts", "quarantine"]
    client = ctx.redis.client
    assert client.xlen(f"fraud:alerts:{tp.id}") == len(expected)
    with get_engine().connect() as conn:
        n_pg = conn.exec_driver_sql("select count(*) from fraud_alerts where pipeline_id = %s",
                                    (tp.id,)).scalar_one()
    assert n_pg == len(expected)

    monkeypatch.setattr(batch.delta, "append", real_append)
    replay = process_batch(frame, 0, ctx=ctx)  # the restarted query replays the same batch
    assert (replay["new_pg"], replay["new_redis"]) == (0, 0)
    kit.check_sinks(spark_reader, tp, warehouse, expected)
