"""The event generator, the retry helper, Kafka lag and the Spark conf (no JVM needed)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from catalog.rules.field_types import FieldSpec, value_problem
from catalog.settings import Settings
from streaming.producer import generate_events
from streaming.session import spark_conf
from streaming.sinks.retry import with_retry
from streaming.watcher import kafka_lag

pytestmark = pytest.mark.unit

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "float", "nullable": False},
    {"name": "user_id", "type": "long", "nullable": True},
    {"name": "ok", "type": "boolean", "nullable": True},
    {"name": "event_time", "type": "timestamp", "nullable": False},
    {"name": "day", "type": "date", "nullable": True},
]


def test_generated_events_fit_the_schema_unless_malformed():
    events = generate_events(SCHEMA, 2000, seed=3, anomaly_share=0.2, malformed_share=0.05)
    specs = [FieldSpec.model_validate(f) for f in SCHEMA]
    malformed = [e for e in events if e.malformed]
    assert 40 < len(malformed) < 170
    assert 250 < sum(e.anomalous for e in events) < 550
    ids = [e.event["transaction_id"] for e in events if e.event]
    assert len(ids) == len(set(ids))
    for e in events:
        if e.malformed:
            continue
        decoded = json.loads(e.value)
        assert decoded == e.event
        assert e.key == decoded["transaction_id"].encode()
        assert all(value_problem(s, decoded.get(s.name)) is None for s in specs), decoded
    for e in malformed:
        try:
            decoded = json.loads(e.value)
        except ValueError:
            assert e.malformed == "invalid_json"
            continue
        if not isinstance(decoded, dict):
            assert e.malformed == "not_an_object"
        else:
            problems = [value_problem(s, decoded.get(s.name)) for s in specs]
            assert any(problems), (e.malformed, decoded)


def test_generation_is_deterministic():
    assert generate_events(SCHEMA, 50, seed=9) == generate_events(SCHEMA, 50, seed=9)
    assert generate_events(SCHEMA, 50, seed=9) != generate_events(SCHEMA, 50, seed=10)


def test_retry_is_bounded():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    assert with_retry("x", flaky, sleep=sleeps.append, base_delay=1, max_delay=1.5) == "ok"
    assert sleeps == [1, 1.5]
    with pytest.raises(ConnectionError):
        with_retry("x", lambda: (_ for _ in ()).throw(ConnectionError("down")),
                   attempts=3, sleep=sleeps.append)


def test_kafka_lag_from_progress():
    progress = {"sources": [{
        "endOffset": {"t": {"0": 10, "1": 5}},
        "latestOffset": {"t": {"0": 15, "1": 5}},
    }]}
    assert kafka_lag(progress) == 5
    assert kafka_lag(None) is None
    # An idle source reports the JSON text "null" for its offsets: unknown, not a crash.
    assert kafka_lag({"sources": [{"endOffset": "null", "latestOffset": "null"}]}) is None


def test_spark_conf_s3a_and_defaults(tmp_path):
    local = spark_conf(Settings(home=tmp_path))
    assert local["spark.sql.session.timeZone"] == "UTC"
    assert local["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert not any(k.startswith("spark.hadoop.fs.s3a") for k in local)
    assert local["spark.driver.memory"] == "3g"
    assert spark_conf(Settings(home=tmp_path, spark_driver_memory="6g"))["spark.driver.memory"] \
        == "6g"
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, spark_driver_memory="lots")
    s3 = spark_conf(Settings(home=tmp_path, s3_endpoint="http://127.0.0.1:9000",
                             s3_access_key_id="k", s3_secret_access_key="s"))
    assert s3["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert s3["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert s3["spark.hadoop.fs.s3a.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    # Checkpoints on local disk rename without a `readlink` child process; on S3 Spark's own
    # choice stays.
    assert local["spark.sql.streaming.checkpointFileManagerClass"].endswith(
        ".FileSystemBasedCheckpointFileManager")
    assert "spark.sql.streaming.checkpointFileManagerClass" not in s3
