"""Fixtures of the lakehouse tests: the SQL endpoint, an isolated schema prefix, known data.

The Spark Thrift Server on 127.0.0.1:10000 is reused when it answers (``make up``), else
started with ``deploy/local/thrift.sh`` (and stopped again at the end). Everything this suite
registers lives in schemas prefixed ``it_<random>_`` (dropped at the end), and the Delta tables
are written to a temporary warehouse by a local SparkSession with the default in-memory
catalog (the endpoint's Derby metastore can only be opened by the endpoint itself).
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import insert

from catalog.db import get_engine
from catalog.settings import Settings
from catalog.tables import pipelines
from tests.integration.lakehouse.lake_data import LakePipeline, payments, sensors, write_pipeline

ROOT = Path(__file__).resolve().parents[3]
HOST = os.environ.get("SENTINEL_THRIFT_HOST", "127.0.0.1")
PORT = int(os.environ.get("SENTINEL_THRIFT_PORT", "10000"))


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def thrift_endpoint() -> Iterator[tuple[str, int]]:
    """The SQL endpoint, started by deploy/local/thrift.sh when nothing answers."""
    started = False
    if not port_open(HOST, PORT):
        script = ROOT / "deploy" / "local" / "thrift.sh"
        proc = subprocess.run(["bash", str(script), "start"], cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"thrift.sh start failed:\n{proc.stdout}\n{proc.stderr}"
        started = True
    yield HOST, PORT
    if started:
        subprocess.run(["bash", str(ROOT / "deploy" / "local" / "thrift.sh"), "stop"], cwd=ROOT,
                       capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def lake_prefix(thrift_endpoint: tuple[str, int]) -> Iterator[str]:
    """A schema prefix of this session; its schemas are dropped at the end."""
    from catalog.lakehouse_tables import drop_schemas

    prefix = f"it_{uuid.uuid4().hex[:8]}_"
    old = os.environ.get("SENTINEL_LAKEHOUSE_SCHEMA_PREFIX")
    os.environ["SENTINEL_LAKEHOUSE_SCHEMA_PREFIX"] = prefix
    yield prefix
    try:
        drop_schemas(prefix)
    finally:
        if old is None:
            os.environ.pop("SENTINEL_LAKEHOUSE_SCHEMA_PREFIX", None)
        else:
            os.environ["SENTINEL_LAKEHOUSE_SCHEMA_PREFIX"] = old


@dataclass
class Lake:
    settings: Settings
    prefix: str
    pipelines: list[LakePipeline]
    ingested: date


@pytest.fixture(scope="session")
def lake(catalog_db: None, lake_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Two pipelines in the catalog with known Delta tables in a temporary warehouse."""
    from streaming.session import build_session

    root = tmp_path_factory.mktemp("lakehouse")
    warehouse = root / "warehouse"
    settings = Settings(warehouse=str(warehouse))
    suffix = uuid.uuid4().hex[:6]
    made: list[LakePipeline] = []
    for make, name, schema_key in ((payments, f"IT Payments {suffix}", "payments"),
                                   (sensors, f"it-iot sensors/{suffix}", "sensors")):
        with get_engine().begin() as conn:
            proto = make(0, name, 0)
            pid = conn.execute(insert(pipelines).values(
                name=name, kafka_topic=f"it-lake-{schema_key}-{suffix}", status="active",
                key_field=proto.key_field, schema=proto.schema,
            ).returning(pipelines.c.id)).scalar_one()
        p = make(pid, name, pid * 100)
        p.topic = f"it-lake-{schema_key}-{suffix}"
        made.append(p)
    spark = build_session("sentinel-lakehouse-tests", settings=settings, shuffle_partitions=2,
                          extra_conf={"spark.sql.warehouse.dir": str(root / "spark-warehouse"),
                                      "spark.sql.catalogImplementation": "in-memory"})
    ingested = date.today()
    for p in made:
        ingested = write_pipeline(spark, p, settings.warehouse_root)
    return Lake(settings, lake_prefix, made, ingested)
