"""The same engine on ``s3a://`` against the local S3 server (stand-in for R2/S3).

Bronze, quarantine, alerts and the checkpoint all live in a fresh bucket; the expectations
are the same independent ones as on the local warehouse.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from streaming.producer import generate_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3000)]


@pytest.fixture()
def bucket(kit):
    import boto3

    s3 = boto3.client("s3", endpoint_url=kit.S3_ENDPOINT, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    name = f"it-stream-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    yield s3, name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=name)


def _checkpoint_files(s3, bucket: str, prefix: str):
    def files(sub: str) -> dict[str, str]:
        out = {}
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                            Prefix=f"{prefix}/{sub}/")
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if name.isdigit():
                    out[name] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return {k: v.decode() for k, v in out.items()}

    return files


def _is_stream_commit(line: str) -> bool:
    """A bronze append carries a ``txn`` (idempotent writer); a silver alerts commit of the
    stream is a MERGE (compaction commits OPTIMIZE and VACUUM)."""
    action = json.loads(line)
    return "txn" in action or action.get("commitInfo", {}).get("operation") == "MERGE"


def _stream_commits_after(s3, bucket: str, table_key: str, version: int) -> list[int]:
    """Versions after ``version`` whose commit is the stream's (``_is_stream_commit``)."""
    prefix = f"{table_key}/_delta_log/"
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix):]
            if name.endswith(".json") and name[:-5].isdigit() and int(name[:-5]) > version:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
                if any(_is_stream_commit(line) for line in body.splitlines() if line):
                    out.append(int(name[:-5]))
    return sorted(out)


def test_stream_on_s3a_with_concurrent_compaction(make_pipeline, job_factory, spark_reader, kit,
                                                  bucket, monkeypatch):
    """The stream works on s3a, and compaction from another driver (this test process) runs
    on bronze events and silver alerts while it streams a backlog in small batches: it cuts
    the file count (read from the Delta log at the versions before and after it), no stream
    commit lands inside it, the stream keeps committing after it without a retry or a
    restart, and after catch-up every sink holds each event and alert exactly once
    (docs/architecture.md, Delta tables)."""
    from orchestration.lake.compaction import compact_table
    from orchestration.lake.delta_stats import table_stats

    s3, name = bucket
    monkeypatch.delenv("SENTINEL_WAREHOUSE", raising=False)
    # VACUUM with retention 0 deletes the compacted-away files at once: the stream must not
    # need them (spark_reader is this test process's own Spark driver).
    spark_reader.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    # VACUUM lists the table with this many tasks: Spark's default (10,000) made one VACUUM of
    # this small table take minutes on 2 cores, holding the lease meanwhile.
    spark_reader.conf.set("spark.sql.sources.parallelPartitionDiscovery.parallelism", "2")
    tp = make_pipeline(kit.base_rules())
    wave1 = generate_events(kit.SCHEMA, 300, 11, anomaly_share=0.25, malformed_share=0.05,
                            id_prefix=tp.topic)
    wave2 = generate_events(kit.SCHEMA, 120, 12, anomaly_share=0.25, malformed_share=0.05,
                            id_prefix=tp.topic)
    total = len(wave1) + len(wave2)
    tp.produce(wave1)
    job = job_factory(tp.id, {
        "SENTINEL_S3_ENDPOINT": kit.S3_ENDPOINT,
        "SENTINEL_S3_ACCESS_KEY_ID": "testing",
        "SENTINEL_S3_SECRET_ACCESS_KEY": "testing",
        "SENTINEL_S3_BUCKET": name,
    })
    job.env.pop("SENTINEL_WAREHOUSE", None)
    job.start(max_offsets=60)  # ~7 micro-batches, each adding files to both tables
    files = _checkpoint_files(s3, name, f"_checkpoints/pipeline_{tp.id}/archive")
    root = f"s3a://{name}"
    tables = {"events": f"bronze/pipeline_{tp.id}/events",
              "alerts": f"silver/pipeline_{tp.id}/alerts"}
    kit.wait_for(lambda: kit.committed_offsets(files) >= 120, 600, "two batches on s3a", job)

    results: dict[str, object] = {}

    def compact_both() -> None:
        for table, key in tables.items():  # Z-order events by their key, as the asset does
            results[table] = compact_table(
                spark_reader, f"{root}/{key}", retention_hours=0, lease_timeout=900,
                zorder_by="transaction_id" if table == "events" else None,
                owner="test compaction")

    backlog = len(wave1) - kit.committed_offsets(files)
    worker = threading.Thread(target=compact_both)
    started = time.monotonic()
    worker.start()
    tp.produce(wave2)  # more work arrives while compaction runs
    worker.join(timeout=1500)
    assert not worker.is_alive(), "compaction hung"
    print(f"compaction of both tables: {time.monotonic() - started:.1f}s, "
          f"backlog at its start {backlog}")
    assert backlog > 0, "the stream had caught up before compaction: nothing concurrent"
    for table, key in tables.items():
        r = results[table]
        assert r.status == "compacted", r.message
        before = table_stats(f"{root}/{key}", s3_client=s3, version=r.version_before)
        after = table_stats(f"{root}/{key}", s3_client=s3, version=r.version_after)
        print(f"  {table}: v{r.version_before}->v{r.version_after} "
              f"files {before.files}->{after.files} rows {before.rows}->{after.rows}")
        assert (before.files, after.files) == (r.files_before, r.files_after)
        assert after.files < before.files
        assert after.rows == before.rows  # compaction rewrites, never adds or drops rows
        # Under the lease, no stream commit lands between compaction's first and last.
        inside = _stream_commits_after(s3, name, key, r.version_before)
        assert not [v for v in inside if v <= r.version_after], inside
    assert job.alive(), job.log_tail()
    # The stream goes on committing to both tables after compaction.
    kit.wait_for(lambda: all(_stream_commits_after(s3, name, key, results[t].version_after)
                             for t, key in tables.items()), 900,
                 "stream commits after compaction", job)

    kit.wait_for(lambda: kit.committed_offsets(files) == total, 900, "s3a catch-up", job)
    kit.check_sinks(spark_reader, tp, root, kit.expected_alerts(tp))
    stats = table_stats(f"{root}/{tables['events']}", s3_client=s3)
    assert stats.rows == sum(1 for e in tp.sent if e.event)  # the log agrees with Spark
    log = job.log_path.read_text()
    assert "retrying in" not in log and "query failed" not in log, job.log_tail()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]]
    assert any(k.startswith(f"bronze/pipeline_{tp.id}/events/_delta_log/") for k in keys)
    tp.set_status("stopped")
    assert job.wait_exit(120) == 0, job.log_tail()
    runs = tp.runs()
    assert len(runs) == 1 and runs[0].status == "stopped", runs  # never failed or restarted
