"""The services started by `make services` answer for real on their loopback ports."""

from __future__ import annotations

import time
import uuid

import boto3
import psycopg2
import pytest
import redis
from botocore.config import Config
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


def test_postgres_answers_on_the_sentinel_database() -> None:
    conn = psycopg2.connect(
        host=HOST,
        port=5432,
        user="sentinel",
        password="sentinel",
        dbname="sentinel",
        connect_timeout=5,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("select 1, current_database(), current_user")
            assert cur.fetchone() == (1, "sentinel", "sentinel")
            cur.execute("show server_version_num")
            row = cur.fetchone()
            assert row is not None and int(row[0]) >= 150000
    finally:
        conn.close()


def test_redis_ping_and_roundtrip() -> None:
    client = redis.Redis(host=HOST, port=6379, socket_timeout=5)
    try:
        assert client.ping() is True
        key = f"sentinel:test:stack:{uuid.uuid4().hex}"
        client.set(key, "ok", ex=30)
        assert client.get(key) == b"ok"
        client.delete(key)
    finally:
        client.close()


def test_kafka_broker_creates_and_lists_a_topic() -> None:
    topic = f"sentinel-stack-test-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=f"{HOST}:9092", request_timeout_ms=15000)
    try:
        admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
        deadline = time.monotonic() + 20
        while topic not in admin.list_topics():
            assert time.monotonic() < deadline, f"topic {topic} never listed"
            time.sleep(0.5)
        described = admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 2
        admin.delete_topics([topic])
    finally:
        admin.close()


def test_s3_server_bucket_put_and_get() -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:9000",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )
    bucket = f"sentinel-stack-{uuid.uuid4().hex[:10]}"
    body = uuid.uuid4().bytes * 100
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/object.bin", Body=body)
    assert s3.get_object(Bucket=bucket, Key="dir/object.bin")["Body"].read() == body
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/object.bin"]
    s3.delete_object(Bucket=bucket, Key="dir/object.bin")
    s3.delete_bucket(Bucket=bucket)
