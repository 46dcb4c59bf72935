"""The benchmarks' load generator: the rate it promises, ids the latency is measured from, and
event times that never run ahead of the send."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

import pytest

from bench.common import create_topic
from bench.load import PARTITIONS, USERS, Load
from catalog.settings import get_settings
from streaming.kafka_io import read_records
from streaming.session import build_session

pytestmark = pytest.mark.integration

RATE, SECONDS = 500, 4.0


def test_load_holds_its_rate_with_unique_ids_and_past_event_times(spark_slot):
    spark = spark_slot.acquire("bench-load", lambda: build_session(
        "sentinel-it-bench-load", master="local[2]", delta=False, shuffle_partitions=1))
    topic = f"it-bench-load-{uuid.uuid4().hex[:8]}"
    create_topic(topic, PARTITIONS)
    create_topic(topic + "-warm", PARTITIONS)
    warm = Load(spark, topic + "-warm", RATE, "w").start()  # the first writes compile code
    time.sleep(2)
    warm.stop()
    before = time.monotonic()
    load = Load(spark, topic, RATE, "t").start()
    started = time.monotonic()
    time.sleep(SECONDS)
    stopping = time.monotonic()
    sent = load.stop()

    rows = read_records(spark, bootstrap=get_settings().kafka_bootstrap_servers, topic=topic,
                        start="earliest").select("key", "value").collect()
    events = [json.loads(r["value"]) for r in rows]
    assert len(events) == sent
    # Every event due between start() and stop(), however slow the writes were.
    assert RATE * (stopping - started) - 1 <= sent <= RATE * (stopping - before) + 1
    ids = [e["transaction_id"] for e in events]
    assert len(set(ids)) == len(ids) == len({int(i.split("-")[2]) for i in ids})
    assert {r["key"].decode() for r in rows} == set(ids)
    for e in events:
        tag, ms, n = e["transaction_id"].split("-")
        assert tag == "t" and e["user_id"] == int(n) % USERS
        event_ms = datetime.fromisoformat(e["event_time"]).timestamp() * 1000
        assert int(ms) - 200 <= event_ms <= int(ms)


def test_load_into_several_topics_gives_each_the_same_events(spark_slot):
    """One job per tick writes every topic: each gets ``sent`` events, the same ids, with the
    latency benchmark's fields (``amount`` in [0, 100))."""
    spark = spark_slot.acquire("bench-load", lambda: build_session(
        "sentinel-it-bench-load", master="local[2]", delta=False, shuffle_partitions=1))
    topics = [f"it-bench-load-many-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    for topic in topics:
        create_topic(topic, PARTITIONS)
    load = Load(spark, topics, RATE, "s", shape="latency").start()
    time.sleep(2.0)
    sent = load.stop()
    assert sent >= RATE * 2.0 - 1
    ids_per_topic = []
    for topic in topics:
        rows = read_records(spark, bootstrap=get_settings().kafka_bootstrap_servers,
                            topic=topic, start="earliest").select("value").collect()
        events = [json.loads(r["value"]) for r in rows]
        assert len(events) == sent
        assert {tuple(sorted(e)) for e in events} == {("amount", "event_time",
                                                       "transaction_id")}
        assert all(0 <= e["amount"] < 100 for e in events)
        ids_per_topic.append(sorted(e["transaction_id"] for e in events))
    assert ids_per_topic[0] == ids_per_topic[1] == ids_per_topic[2]
    assert len(set(ids_per_topic[0])) == sent
