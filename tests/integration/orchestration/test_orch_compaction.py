"""Compaction on real Delta tables, and the writer lease on the s3a:// path."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from orchestration.lake.compaction import compact_table
from orchestration.lake.delta_stats import table_stats
from tests.integration.orchestration.conftest import s3_client, write_small_files

pytestmark = pytest.mark.integration

HOLDER = """
import sys, time
from catalog.writer_lease import writer_lease
with writer_lease(sys.argv[1], owner="test stream driver", timeout=5):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", time.time(), flush=True)
"""


def hold_lease(path: str, seconds: float) -> subprocess.Popen:
    """Another process (another 'driver') holding the table's lease for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, path, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def count(spark, path: str) -> tuple[int, int]:
    df = spark.read.format("delta").load(path)
    return df.count(), df.select("txn_id").distinct().count()


def test_compaction_reduces_files_and_keeps_every_row(spark, tmp_path, catalog_db):
    path = str(tmp_path / "events")
    rows = write_small_files(spark, path, batches=5)
    before = table_stats(path)
    result = compact_table(spark, path, zorder_by="txn_id", retention_hours=0)
    assert result.status == "compacted", result.message
    assert result.files_before == before.files >= 5
    assert result.files_after < result.files_before and result.files_after == 1
    assert count(spark, path) == (rows, rows)
    assert table_stats(path).files == 1  # the log agrees with Spark


def test_compaction_of_a_missing_table_is_skipped(spark, tmp_path):
    result = compact_table(spark, str(tmp_path / "nothing"))
    assert result.status == "skipped" and "no Delta table" in result.message


@pytest.mark.timeout(1200)
def test_s3a_compaction_never_commits_while_another_driver_holds_the_lease(
        spark, bucket, catalog_db):
    path = f"s3a://{bucket}/lease-{uuid.uuid4().hex[:6]}/events"
    rows = write_small_files(spark, path, batches=4)
    s3 = s3_client()
    version_before = table_stats(path, s3_client=s3).version

    holder = hold_lease(path, 30)
    try:
        result = compact_table(spark, path, retention_hours=0, lease_timeout=3)
    finally:
        holder.kill()
        holder.wait()
    assert result.status == "skipped"
    assert "test stream driver" in result.message  # says who holds the table
    assert table_stats(path, s3_client=s3).version == version_before  # nothing committed

    holder = hold_lease(path, 6)
    started = time.time()
    result = compact_table(spark, path, retention_hours=0, lease_timeout=60)
    out = holder.communicate(timeout=30)[0]
    released = float(out.split()[-1])
    assert result.status == "compacted", result.message
    assert time.time() - started >= 5  # it waited for the other driver
    stats = table_stats(path, s3_client=s3)
    assert stats.last_commit is not None and stats.last_commit.timestamp() >= released - 0.5
    assert result.files_after < result.files_before
    assert count(spark, path) == (rows, rows)
