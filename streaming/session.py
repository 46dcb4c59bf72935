"""The SparkSession every streaming job, test and benchmark uses.

One place decides the cluster (``settings.spark_master``), the Delta Lake extensions, the JVM
jars shipped by the local stack (``.sentinel/jars/spark/*.jar``), the driver's class-data
archive (``streaming.class_archive``) and, when the warehouse lives on S3/R2, the ``s3a://``
connector. Secrets go only into the Spark conf, never into logs.
"""

from __future__ import annotations

import logging
import os
import sys

from pyspark.sql import SparkSession

from catalog.settings import Settings, get_settings
from streaming.jvm import java_options as archive_java_options
from streaming.jvm import spark_jars

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


# Spark generates a method per plan stage; HotSpot never compiles one over 8,000 bytes of
# bytecode, so a wide stage runs interpreted for the JVM's life (the velocity step's output
# serializer: 12 % of a 60 s profile at 7,300 events/s, all of it in the interpreter).
# ``SENTINEL_SPARK_COMPILE_HUGE_METHODS=false`` leaves HotSpot's default.
HUGE_METHODS = "-XX:-DontCompileHugeMethods"
LOCAL_CHECKPOINT_MANAGER = ("org.apache.spark.sql.execution.streaming.checkpointing."
                            "FileSystemBasedCheckpointFileManager")


def spark_conf(
    settings: Settings, *, delta: bool = True, jars: bool = True, shuffle_partitions: int = 4,
    class_archive: bool = True,
) -> dict:
    """The Spark configuration as a plain dict (tested without starting a JVM).

    ``class_archive``: the driver maps the class-data archive when it was built
    (``streaming.class_archive``; off for JVMs with another classpath, e.g. the Thrift Server).
    """
    java_opts = " ".join(filter(None, [
        "-Duser.timezone=UTC", settings.spark_compile_huge_methods and HUGE_METHODS,
        class_archive and archive_java_options(settings)]))
    conf: dict[str, str] = {
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.default.parallelism": str(shuffle_partitions),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": java_opts,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        "spark.sql.adaptive.enabled": "false",
        # A rule such as `amount / qty > 5` must yield NULL (no match) on qty = 0, not fail
        # the whole stream: rules run with non-ANSI semantics.
        "spark.sql.ansi.enabled": "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Micro-batch tables are small per commit: Delta's default 50 snapshot partitions
        # make every commit's state reconstruction run 50 tiny tasks.
        "spark.databricks.delta.snapshotPartitions": "2",
        # VACUUM lists the table with this many tasks (default 10,000): minutes for a small
        # table on a few cores, while it holds the writer lease the stream waits for.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(shuffle_partitions),
    }
    jar_list = spark_jars(settings) if jars else []
    if jar_list:
        conf["spark.jars"] = ",".join(jar_list)
    if delta:
        conf["spark.sql.extensions"] = DELTA_EXTENSION
        conf["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
    if settings.uses_object_store:
        conf.update(_s3a_conf(settings))
    else:
        # On local disk the default (FileContext) checkpoint manager checks each rename's
        # target for a symlink, which Hadoop does by running `readlink` in a child process: a
        # fork of the driver JVM per offset-log, commit-log and state-changelog file (a small
        # velocity batch took 1.6 s with it, 0.8 s without). A local rename is atomic anyway.
        conf["spark.sql.streaming.checkpointFileManagerClass"] = LOCAL_CHECKPOINT_MANAGER
    return conf


def _s3a_conf(settings: Settings) -> dict[str, str]:
    assert settings.s3_access_key_id is not None and settings.s3_secret_access_key is not None
    conf = {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.access.key": settings.s3_access_key_id.get_secret_value(),
        "spark.hadoop.fs.s3a.secret.key": settings.s3_secret_access_key.get_secret_value(),
        "spark.hadoop.fs.s3a.path.style.access": str(settings.s3_path_style).lower(),
        "spark.hadoop.fs.s3a.aws.credentials.provider":
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "spark.hadoop.fs.s3a.endpoint.region": os.environ.get("AWS_REGION", "us-east-1"),
        "spark.hadoop.fs.s3a.change.detection.mode": "none",
        "spark.hadoop.fs.s3a.attempts.maximum": "5",
        "spark.hadoop.fs.s3a.retry.limit": "5",
        # S3's default Delta log store is single-writer per table (docs/architecture.md,
        # Delta tables).
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
    }
    if settings.s3_endpoint:
        endpoint = settings.s3_endpoint
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        ssl = endpoint.startswith("https://")
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(ssl).lower()
    return conf


def local_slots(master: str, needed: int) -> str:
    """``local[*]`` widened to ``needed`` task slots (a real-time query holds one slot per
    Kafka partition for as long as it runs); any other master is returned unchanged."""
    if master != "local[*]":
        return master
    return f"local[{max(needed, os.cpu_count() or 1)}]"


def build_session(
    app_name: str = "sentinel-streaming",
    *,
    settings: Settings | None = None,
    master: str | None = None,
    delta: bool = True,
    jars: bool = True,
    shuffle_partitions: int = 4,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Get or create the process's SparkSession configured for Sentinel."""
    settings = settings or get_settings()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    master = master or settings.spark_master
    builder = SparkSession.builder.appName(app_name).master(master)
    conf = spark_conf(settings, delta=delta, jars=jars, shuffle_partitions=shuffle_partitions)
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    log.info(
        "spark session: master=%s jars=%d delta=%s object_store=%s",
        master, len(spark_jars(settings)), delta, settings.uses_object_store,
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
