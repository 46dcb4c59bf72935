"""Resources of the lake: Spark with Delta and the warehouse root, and the object store's files.

Each defaults to the platform settings (``catalog.settings``), so the local stack needs no
configuration; every field can be overridden per deployment in ``definitions.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dagster import ConfigurableResource

from catalog.settings import get_settings
from orchestration.lake.delta_stats import DeltaStats, table_stats


class ObjectStoreResource(ConfigurableResource):
    """Reads the warehouse's files (Delta logs): the local disk or S3/R2 via boto3."""

    endpoint_url: str | None = None

    def _s3(self):
        import boto3

        s = get_settings()
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url or s.s3_endpoint,
            aws_access_key_id=s.s3_access_key_id.get_secret_value() if s.s3_access_key_id else None,
            aws_secret_access_key=(
                s.s3_secret_access_key.get_secret_value() if s.s3_secret_access_key else None
            ),
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
        )

    def stats(self, table_path: str) -> DeltaStats:
        """Version, files, rows, bytes and last commit of the Delta table at ``table_path``."""
        client = self._s3() if table_path.startswith(("s3a://", "s3://")) else None
        return table_stats(table_path, s3_client=client)


class LakeResource(ConfigurableResource):
    """Spark with Delta and the warehouse root: where each pipeline's tables live."""

    warehouse_root: str | None = None
    spark_master: str = "local[2]"
    driver_memory: str = "1g"
    shuffle_partitions: int = 2

    @property
    def root(self) -> str:
        return (self.warehouse_root or get_settings().warehouse_root).rstrip("/")

    def tables(self, pipeline_id: int | str) -> dict[str, str]:
        """The pipeline's Delta tables (same layout as ``streaming.pipeline.Paths``)."""
        slug = f"pipeline_{pipeline_id}"
        return {
            "bronze_events": f"{self.root}/bronze/{slug}/events",
            "quarantine": f"{self.root}/bronze/{slug}/quarantine",
            "silver_alerts": f"{self.root}/silver/{slug}/alerts",
        }

    def spark_conf(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        s = get_settings()
        jar_dir = Path(s.jars_dir) / "spark"
        jars = sorted(str(p) for p in jar_dir.glob("*.jar")) if jar_dir.is_dir() else []
        conf = {
            "spark.master": self.spark_master,
            "spark.driver.memory": self.driver_memory,
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.default.parallelism": str(self.shuffle_partitions),
            # small tables, small machine: Delta's log replay and VACUUM listing default to
            # 50 tasks each, which dominates maintenance time here
            "spark.databricks.delta.snapshotPartitions": str(self.shuffle_partitions),
            "spark.sql.sources.parallelPartitionDiscovery.parallelism":
                str(self.shuffle_partitions),
            "spark.ui.showConsoleProgress": "false",
            "spark.ui.enabled": "false",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
            "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        }
        if jars:
            conf["spark.jars"] = ",".join(jars)
        if s.uses_object_store:
            assert s.s3_access_key_id and s.s3_secret_access_key
            conf.update({
                "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
                "spark.hadoop.fs.s3a.access.key": s.s3_access_key_id.get_secret_value(),
                "spark.hadoop.fs.s3a.secret.key": s.s3_secret_access_key.get_secret_value(),
                "spark.hadoop.fs.s3a.path.style.access": str(s.s3_path_style).lower(),
                "spark.hadoop.fs.s3a.aws.credentials.provider":
                    "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
                "spark.hadoop.fs.s3a.endpoint.region": os.environ.get("AWS_REGION", "us-east-1"),
                "spark.hadoop.fs.s3a.change.detection.mode": "none",
                "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
            })
            if s.s3_endpoint:
                conf["spark.hadoop.fs.s3a.endpoint"] = s.s3_endpoint
                conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
                    s.s3_endpoint.startswith("https://")).lower()
        conf.update(extra or {})
        return conf

    def session(self, app_name: str, extra: dict[str, str] | None = None):
        """The process's SparkSession (created on first use; the JVM starts in ~15 s)."""
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.appName(app_name)
        for key, value in self.spark_conf(extra).items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
        return spark
