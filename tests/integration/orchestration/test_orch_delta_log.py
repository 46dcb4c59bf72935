"""``table_stats`` on real tables whose old JSON commits are gone after a checkpoint.

Spark writes the table with a small ``delta.checkpointInterval`` (classic single-file on s3a,
multi-part with stats as a struct only, V2 with sidecars), the JSON commits up to the newest
checkpoint are deleted as Delta's log cleanup would, and the stats read from the log must equal
what Spark itself reports for the same table.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from orchestration.lake.delta_stats import DeltaLogTruncated, table_stats
from tests.integration.orchestration.conftest import s3_client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

VARIANTS = {
    # a multi-part checkpoint whose file stats are only in ``stats_parsed`` (no JSON stats)
    "multi_part_stats_struct": ({"delta.checkpoint.writeStatsAsJson": "false",
                                 "delta.checkpoint.writeStatsAsStruct": "true"},
                                {"spark.databricks.delta.checkpoint.partSize": "2"}),
    "v2_sidecars": ({"delta.checkpointPolicy": "v2"}, {}),
}
CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint\..*(parquet|json)$")


def write_table(spark, path: str, props: dict[str, str]) -> None:
    """6 commits (checkpoints at 2 and 4): appends in 2 partitions, a delete, an append."""
    tbl_props = {"delta.checkpointInterval": "2", **props}
    opts = ", ".join(f"'{k}' = '{v}'" for k, v in tbl_props.items())
    spark.sql(f"CREATE TABLE delta.`{path}` (id string, amount double, d string) "
              f"USING delta PARTITIONED BY (d) TBLPROPERTIES ({opts})")
    for b in range(4):
        rows = [(f"t-{b}-{i}", float(i), f"2026-01-1{i % 2}") for i in range(10 + b)]
        spark.createDataFrame(rows, "id string, amount double, d string") \
            .write.format("delta").mode("append").save(path)
        if b == 2:
            spark.sql(f"DELETE FROM delta.`{path}` WHERE id LIKE 't-1-%'")


def spark_view(spark, path: str) -> tuple[int, int, int, int]:
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, path)
    detail = table.detail().select("numFiles", "sizeInBytes").first()
    version = table.history(1).select("version").first()["version"]
    rows = spark.read.format("delta").load(path).count()
    return int(version), int(detail["numFiles"]), rows, int(detail["sizeInBytes"])


def stats_view(path: str, **kw) -> tuple[int | None, int, int | None, int]:
    s = table_stats(path, **kw)
    return s.version, s.files, s.rows, s.bytes


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stats_after_log_cleanup_match_spark(spark, tmp_path, variant):
    props, session_conf = VARIANTS[variant]
    for k, v in session_conf.items():
        spark.conf.set(k, v)
    try:
        path = str(tmp_path / "t")
        write_table(spark, path, props)
    finally:
        for k in session_conf:
            spark.conf.unset(k)
    log = Path(path) / "_delta_log"
    names = sorted(p.name for p in log.iterdir())
    cps = sorted({int(m[1]) for n in names if (m := CHECKPOINT.match(n))})
    assert cps, f"Spark wrote no checkpoint: {names}"
    if variant.startswith("multi_part"):
        assert any(re.match(r"\d{20}\.checkpoint\.\d{10}\.\d{10}\.parquet$", n) for n in names)
    if variant == "v2_sidecars":
        assert (log / "_sidecars").is_dir() and any((log / "_sidecars").iterdir())
    expected = spark_view(spark, path)
    before_cleanup = stats_view(path)
    assert before_cleanup == expected

    newest = cps[-1]
    for p in log.glob("*.json"):
        if p.stem.isdigit() and int(p.stem) <= newest:
            p.unlink()  # what log cleanup does to commits older than a checkpoint
    (log / "_last_checkpoint").unlink(missing_ok=True)  # only a hint: listing finds it
    stats = table_stats(path)
    assert (stats.version, stats.files, stats.rows, stats.bytes) == expected
    assert stats.checkpoint_version == newest
    assert stats.last_commit is not None
    assert spark.read.format("delta").load(path).count() == expected[2]  # Spark agrees
    if newest > 0:  # a version before the newest checkpoint cannot be rebuilt any more
        with pytest.raises(DeltaLogTruncated):
            table_stats(path, version=newest - 1)


def test_stats_from_a_checkpoint_on_s3a(spark, bucket):
    path = f"s3a://{bucket}/ckpt-{uuid.uuid4().hex[:6]}/events"
    write_table(spark, path, {})
    expected = spark_view(spark, path)
    s3 = s3_client()
    _, key = path.split("://", 1)[1].split("/", 1)
    prefix = f"{key}/_delta_log/"
    objs = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    cps = sorted(int(m[1]) for k in objs if (m := CHECKPOINT.match(k[len(prefix):])))
    assert cps
    gone = [k for k in objs if k.endswith(".json") and k[len(prefix):-5].isdigit()
            and int(k[len(prefix):-5]) <= cps[-1]]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in gone]})
    stats = table_stats(path, s3_client=s3)
    assert (stats.version, stats.files, stats.rows, stats.bytes) == expected
    assert stats.checkpoint_version == cps[-1]
