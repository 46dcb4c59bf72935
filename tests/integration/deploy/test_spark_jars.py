"""The jars fetched by `make jars` (.sentinel/jars/spark) work on pyspark's classpath:
Delta on s3a:// (the S3 server on :9000), the Kafka source, and the PostgreSQL JDBC driver."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from pyspark.sql import SparkSession

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SPARK_JARS = ROOT / ".sentinel" / "jars" / "spark"
S3_ENDPOINT = "http://127.0.0.1:9000"
KAFKA = "127.0.0.1:9092"
JDBC_URL = "jdbc:postgresql://127.0.0.1:5432/sentinel"


@pytest.fixture(scope="module")
def bucket() -> str:
    name = f"sentinel-jars-{uuid.uuid4().hex[:10]}"
    boto3.client(
        "s3",
        endpoint_url=S3_ENDPOINT,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def spark(spark_slot) -> Iterator[SparkSession]:
    jars = sorted(str(p) for p in SPARK_JARS.glob("*.jar"))
    assert jars, f"no jars in {SPARK_JARS}: run `make jars`"
    session = spark_slot.acquire("deploy-jars", lambda: (
        SparkSession.builder.master("local[2]")
        .appName("sentinel-jars-test")
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.hadoop.fs.s3a.endpoint", S3_ENDPOINT)
        .config("spark.hadoop.fs.s3a.endpoint.region", "us-east-1")
        .config("spark.hadoop.fs.s3a.path.style.access", "true")
        .config("spark.hadoop.fs.s3a.connection.ssl.enabled", "false")
        .config("spark.hadoop.fs.s3a.access.key", "test")
        .config("spark.hadoop.fs.s3a.secret.key", "test")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    ))
    yield session
    session.stop()


def test_no_jar_duplicates_pyspark() -> None:
    import pyspark

    bundled = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    ours = {p.name for p in SPARK_JARS.glob("*.jar")}
    assert not bundled & ours
    for wanted in ("delta-spark_", "spark-sql-kafka-0-10_", "hadoop-aws-", "postgresql-", "s3-2"):
        assert any(name.startswith(wanted) for name in ours), wanted


def test_delta_on_s3a(spark: SparkSession, bucket: str) -> None:
    path = f"s3a://{bucket}/delta/numbers"
    df = spark.range(100).selectExpr("id", "id * 2 AS twice")
    df.write.format("delta").save(path)
    df.write.format("delta").mode("append").save(path)
    back = spark.read.format("delta").load(path)
    assert back.count() == 200
    assert back.agg({"twice": "sum"}).collect()[0][0] == 2 * 2 * sum(range(100))
    from delta.tables import DeltaTable

    assert DeltaTable.forPath(spark, path).history().count() == 2


def test_kafka_stream_to_delta_on_s3a_with_s3a_checkpoint(spark: SparkSession, bucket: str) -> None:
    topic = f"sentinel-jars-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=KAFKA)
    for i in range(50):
        producer.send(topic, json.dumps({"i": i}).encode())
    producer.flush()
    producer.close()

    target = f"s3a://{bucket}/delta/{topic}"
    query = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", KAFKA)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
        .selectExpr("CAST(value AS STRING) AS value", "partition", "offset")
        .writeStream.format("delta")
        .option("checkpointLocation", f"s3a://{bucket}/_checkpoints/{topic}")
        .trigger(availableNow=True)
        .start(target)
    )
    deadline = time.monotonic() + 180
    while query.isActive and time.monotonic() < deadline:
        time.sleep(0.5)
    assert query.exception() is None
    assert not query.isActive
    values = sorted(
        json.loads(r.value)["i"] for r in spark.read.format("delta").load(target).collect()
    )
    assert values == list(range(50))


def test_postgres_jdbc(spark: SparkSession) -> None:
    table = f"jars_test_{uuid.uuid4().hex[:8]}"
    options = {
        "url": JDBC_URL,
        "dbtable": table,
        "user": "sentinel",
        "password": "sentinel",
        "driver": "org.postgresql.Driver",
    }
    spark.range(10).write.format("jdbc").options(**options).mode("overwrite").save()
    back = spark.read.format("jdbc").options(**options).load()
    assert back.count() == 10
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1", dbname="sentinel", user="sentinel", password="sentinel"
    )
    with conn, conn.cursor() as cur:
        cur.execute(f'drop table "{table}"')
    conn.close()
