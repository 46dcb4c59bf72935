"""The same engine on ``s3a://`` against the local S3 server (stand-in for R2/S3).

Bronze, quarantine, alerts and the checkpoint all live in a fresh bucket; the expectations
are the same independent ones as on the local warehouse.
"""

from __future__ import annotations

import json
import uuid

import pytest

from streaming.producer import generate_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


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


def test_stream_on_s3a(make_pipeline, job_factory, spark_reader, kit, bucket, monkeypatch):
    s3, name = bucket
    monkeypatch.delenv("SENTINEL_WAREHOUSE", raising=False)
    tp = make_pipeline(kit.base_rules())
    events = generate_events(kit.SCHEMA, 400, 11, anomaly_share=0.25, malformed_share=0.05,
                             id_prefix=tp.topic)
    tp.produce(events)
    job = job_factory(tp.id, {
        "SENTINEL_S3_ENDPOINT": kit.S3_ENDPOINT,
        "SENTINEL_S3_ACCESS_KEY_ID": "testing",
        "SENTINEL_S3_SECRET_ACCESS_KEY": "testing",
        "SENTINEL_S3_BUCKET": name,
    })
    job.env.pop("SENTINEL_WAREHOUSE", None)
    job.start()
    files = _checkpoint_files(s3, name, f"_checkpoints/pipeline_{tp.id}")
    kit.wait_for(lambda: kit.committed_offsets(files) == len(events), 600, "s3a catch-up", job)
    kit.check_sinks(spark_reader, tp, f"s3a://{name}", kit.expected_alerts(tp))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]]
    assert any(k.startswith(f"bronze/pipeline_{tp.id}/events/_delta_log/") for k in keys)
    log = json.loads(s3.get_object(
        Bucket=name, Key=f"bronze/pipeline_{tp.id}/events/_delta_log/00000000000000000000.json"
    )["Body"].read().decode().splitlines()[0])
    assert log  # a real Delta log on the object store
    tp.set_status("stopped")
    assert job.wait_exit(120) == 0, job.log_tail()
