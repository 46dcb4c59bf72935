"""Spark for the orchestration tests: one local session with Delta and the s3a:// connector
pointed at the S3 stand-in on 127.0.0.1:9000 (bucket created per session)."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from orchestration.lake.resources import LakeResource

S3_ENDPOINT = "http://127.0.0.1:9000"
S3_KEY = "sentinel-test"


def s3a_conf() -> dict[str, str]:
    return {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint": S3_ENDPOINT,
        "spark.hadoop.fs.s3a.access.key": S3_KEY,
        "spark.hadoop.fs.s3a.secret.key": S3_KEY,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.aws.credentials.provider":
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "spark.hadoop.fs.s3a.change.detection.mode": "none",
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
        "spark.databricks.delta.retentionDurationCheck.enabled": "false",
    }


def s3_client():
    return boto3.client("s3", endpoint_url=S3_ENDPOINT, aws_access_key_id=S3_KEY,
                        aws_secret_access_key=S3_KEY, region_name="us-east-1")


@pytest.fixture(scope="session")
def bucket() -> str:
    name = f"orch-{uuid.uuid4().hex[:8]}"
    s3_client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def spark(spark_slot) -> Any:
    return spark_slot.acquire("orchestration", lambda: LakeResource(
        spark_master="local[2]").session("sentinel-orch-tests", s3a_conf()))


def write_small_files(spark, path: str, batches: int, rows: int = 20) -> int:
    """``batches`` appends of ``rows`` rows each (≥ 1 file per append); returns the row count."""
    for b in range(batches):
        df = spark.createDataFrame(
            [(f"t-{b}-{i}", float(i), "2026-01-15") for i in range(rows)],
            "txn_id string, amount double, event_date string",
        ).coalesce(1)
        df.write.format("delta").mode("append").partitionBy("event_date").save(path)
    return batches * rows
