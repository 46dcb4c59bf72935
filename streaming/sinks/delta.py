"""Delta Lake appends that a replayed micro-batch cannot duplicate.

Each table gets its own idempotent-writer id (``txnAppId`` = ``<query id>:<table>``) and the
batch id as ``txnVersion``: Delta skips an append whose (app id, version) it already committed.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from catalog.writer_lease import writer_lease
from streaming.sinks.retry import with_retry

log = logging.getLogger(__name__)


def append(
    df: DataFrame,
    path: str,
    *,
    query_id: str,
    table: str,
    batch_id: int,
    partition_by: list[str] | None = None,
    merge_schema: bool = False,
) -> None:
    """Append ``df`` to the Delta table at ``path`` exactly once for this (query, batch).

    ``merge_schema`` lets a pipeline whose schema gained (nullable) fields add the columns.
    """
    writer = (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", f"{query_id}:{table}")
        .option("txnVersion", str(batch_id))
        .option("mergeSchema", str(merge_schema).lower())
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)

    def commit() -> None:
        # The lease keeps compaction (another driver) from committing to this table meanwhile:
        # the default Delta log store on S3/R2 is single-writer.
        with writer_lease(path, owner=f"stream {query_id} {table}", timeout=600):
            writer.save(path)

    with_retry(f"delta append {table} batch {batch_id}", commit)


def ensure_table(empty: DataFrame, path: str, partition_by: list[str] | None = None) -> None:
    """Create an empty Delta table at ``path`` (schema of ``empty``) when none exists."""
    from delta.tables import DeltaTable

    if DeltaTable.isDeltaTable(empty.sparkSession, path):
        return
    writer = empty.write.format("delta").mode("append")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    with writer_lease(path, owner="stream ensure_table", timeout=600):
        if DeltaTable.isDeltaTable(empty.sparkSession, path):
            return
        writer.save(path)
    log.info("created Delta table %s", path)


def merge_new(df: DataFrame, path: str, *, key: str, since: tuple[str, int]) -> None:
    """Insert the rows of ``df`` whose ``key`` the Delta table at ``path`` does not hold.

    Idempotent by itself (a replayed batch inserts nothing). ``since`` = (column, lower bound):
    a repeated row carries the same value of that column, so only table rows at or above the
    bound are compared, which lets Delta skip older files.
    """
    from delta.tables import DeltaTable

    column, bound = since
    condition = (F.col(f"t.{key}") == F.col(f"s.{key}")) & (F.col(f"t.{column}") >= F.lit(bound))

    def commit() -> None:
        with writer_lease(path, owner=f"stream merge {path.rsplit('/', 1)[-1]}", timeout=600):
            table = DeltaTable.forPath(df.sparkSession, path)
            table.alias("t").merge(df.alias("s"), condition).whenNotMatchedInsertAll().execute()

    with_retry(f"delta merge {path}", commit)
