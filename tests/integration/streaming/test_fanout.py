"""The alert fan-out against the real Kafka, Postgres and Redis: every alert on the topic lands
once in each sink, through repeats on the topic, a sink outage and a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from kafka import KafkaProducer

from catalog.db import get_engine
from streaming.alerts import alert_id
from streaming.fanout import Fanout
from streaming.sinks.redis_sink import RedisAlertSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
BOOTSTRAP = "127.0.0.1:9092"


def _messages(tp, spec, events: range) -> list[tuple[str, dict]]:
    out = []
    for i in events:
        event_id = f"{tp.topic}-e{i}"
        out.append((event_id, {
            "alert_id": alert_id(tp.id, spec.id, 1, event_id), "pipeline_id": tp.id,
            "rule_id": spec.id, "rule_version": 1, "severity": spec.severity,
            "score": spec.score, "rule_description": "fan-out test", "event_id": event_id,
            "event_time": "2026-03-01T10:00:00.000000Z",
            "transaction_data": {"transaction_id": event_id, "amount": 9000.0},
            "kafka_partition": 0, "kafka_offset": i,
        }))
    return out


def _send(topic: str, messages: list[tuple[str, dict]]) -> None:
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for key, value in messages:
        producer.send(topic, key=key.encode(), value=json.dumps(value).encode())
    producer.flush()
    producer.close()


def _pg(pipeline_id: int) -> list[tuple[str, str]]:
    with get_engine().connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            "select alert_id, transaction_data->>'transaction_id' from fraud_alerts "
            "where pipeline_id = %s", (pipeline_id,)).all()]


def _wait(cond, timeout: float, what: str, fanout: Fanout) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        assert fanout.error is None, fanout.error
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}: {fanout.stats}")


@dataclass
class AlertsTopic:
    """A one-rule pipeline's alerts topic (deleted afterwards) and the Redis sink."""

    tp: Any
    spec: Any
    topic: str
    client: redis.Redis
    sink: RedisAlertSink


@pytest.fixture()
def alerts(make_pipeline, kit) -> Iterator[AlertsTopic]:
    from tests.integration.streaming.conftest import create_topic, delete_topic

    tp = make_pipeline(kit.base_rules()[:1])
    topic = f"sentinel-alerts.{tp.topic}"
    create_topic(topic)
    client = redis.Redis.from_url(kit.REDIS_URL, decode_responses=True)
    try:
        yield AlertsTopic(tp, tp.rules[0], topic, client,
                          RedisAlertSink(client, ttl_seconds=600, stream_maxlen=10_000))
    finally:
        delete_topic(topic)


def test_each_alert_lands_once_through_repeats_an_outage_and_a_restart(alerts):
    tp, spec, topic, client, sink = (alerts.tp, alerts.spec, alerts.topic, alerts.client,
                                     alerts.sink)
    first = _messages(tp, spec, range(0, 40))
    _send(topic, first + first[:10])  # the detect path's sink repeated ten
    failures = {"left": 2}
    fanout = Fanout(tp.id, topic, bootstrap=BOOTSTRAP, redis=sink, retry_pause=0.2)
    real = fanout.sink

    def flaky(rows):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("postgres is down")
        real(rows)

    fanout.sink = flaky
    fanout.start()
    _wait(lambda: len(_pg(tp.id)) == 40 and client.xlen(f"fraud:alerts:{tp.id}") == 40,
          60, "the first 40 alerts", fanout)
    assert fanout.stats.retries == 2 and failures["left"] == 0
    assert fanout.drain(30)
    fanout.stop()

    # A new fan-out resumes from the committed offsets: only the new alerts are new.
    second = _messages(tp, spec, range(40, 60))
    _send(topic, first[20:] + second)
    again = Fanout(tp.id, topic, bootstrap=BOOTSTRAP, redis=sink)
    again.start()
    _wait(lambda: again.stats.records == 40, 60, "the second batch", again)
    again.stop()
    assert (again.stats.new_pg, again.stats.new_redis) == (20, 20)
    want = {(m["alert_id"], key) for key, m in first + second}
    assert sorted(_pg(tp.id)) == sorted(want)
    assert client.xlen(f"fraud:alerts:{tp.id}") == 60
    assert int(client.hget(f"fraud:counts:{tp.id}", spec.severity)) == 60
    assert client.hget(f"fraud:txn:{tp.topic}-e59", "rule_ids") == str(spec.id)


def test_a_stop_during_a_sink_outage_commits_nothing_it_did_not_write(alerts):
    """Stopped while its sinks are down, the fan-out leaves the undelivered batch uncommitted
    (its consumer position is past it): the next fan-out writes it."""
    tp, spec, topic, sink = alerts.tp, alerts.spec, alerts.topic, alerts.sink
    first, second = _messages(tp, spec, range(0, 5)), _messages(tp, spec, range(5, 12))
    _send(topic, first)
    fanout = Fanout(tp.id, topic, bootstrap=BOOTSTRAP, redis=sink, retry_pause=0.2)
    fanout.start()
    _wait(lambda: len(_pg(tp.id)) == 5, 60, "the first alerts", fanout)
    real, down = fanout.sink, {"on": True}

    def outage(rows):
        if down["on"]:
            raise ConnectionError("postgres is down")
        real(rows)

    fanout.sink = outage
    _send(topic, second)
    _wait(lambda: fanout.stats.retries >= 2, 60, "the outage to be felt", fanout)
    fanout.stop()
    assert not fanout.alive() and fanout.error is None
    assert len(_pg(tp.id)) == 5

    again = Fanout(tp.id, topic, bootstrap=BOOTSTRAP, redis=sink)
    again.start()
    _wait(lambda: len(_pg(tp.id)) == 12, 60, "the undelivered batch", again)
    again.stop()
    assert (again.stats.new_pg, again.stats.new_redis) == (7, 7)
    assert sorted(_pg(tp.id)) == sorted((m["alert_id"], key) for key, m in first + second)
