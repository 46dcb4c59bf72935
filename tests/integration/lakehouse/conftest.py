"""Fixtures of the lakehouse tests: the SQL endpoint, an isolated schema prefix, known data.

The Spark Thrift Server on 127.0.0.1:10000 is reused when it answers (``make up``), else
started with ``deploy/local/thrift.sh`` (and stopped again at the end). Everything this suite
registers lives in schemas prefixed ``it_<random>_`` (dropped at the end), and the Delta tables
are written to a temporary warehouse by a local SparkSession with the default in-memory
catalog (the endpoint's Derby metastore can only be opened by the endpoint itself).

``streamed`` adds a pipeline fed through Kafka and the real streaming job into the same
warehouse, ``incremental`` one more pipeline of known data, and ``dagster_build`` runs
``dagster asset materialize`` of the dbt assets (every day partition of the test data in one
run) once over all of it (test_dbt_models.py, test_stream_to_marts.py and
test_marts_incremental.py share that build).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from catalog.db import get_engine
from catalog.settings import Settings
from catalog.tables import pipelines
from tests.integration.lakehouse.lake_data import LakePipeline, payments, sensors, write_pipeline

ROOT = Path(__file__).resolve().parents[3]
HOST = os.environ.get("SENTINEL_THRIFT_HOST", "127.0.0.1")
PORT = int(os.environ.get("SENTINEL_THRIFT_PORT", "10000"))
BUILD_FROM = "2026-01-01"  # first day partition dagster_build rebuilds


def sql_endpoint_log(lines: int = 40) -> str:
    """The Thrift Server log's last errors and exceptions: why a dbt statement lost its session
    (appended to the build fixtures' failure messages)."""
    home = Path(os.environ.get("SENTINEL_HOME") or ROOT / ".sentinel")
    log = home / "logs" / "thrift.log"
    if not log.exists():
        return f"(no {log})"
    picked = [line for line in log.read_text(errors="replace").splitlines()
              if any(w in line for w in ("ERROR", "Exception", "Error:"))]
    return f"---- {log}, last errors and exceptions ----\n" + "\n".join(picked[-lines:])


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
    from orchestration.lake.registration import drop_schemas

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
    session: Callable[[], Any]  # the suite's SparkSession (Delta enabled), started again if needed


@pytest.fixture(scope="session")
def lake(catalog_db: None, lake_prefix: str, tmp_path_factory: pytest.TempPathFactory,
         spark_slot: Any) -> Lake:
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
    def session() -> Any:
        return spark_slot.acquire("lakehouse", lambda: build_session(
            "sentinel-lakehouse-tests", settings=settings, shuffle_partitions=2,
            extra_conf={"spark.sql.warehouse.dir": str(root / "spark-warehouse"),
                        "spark.sql.catalogImplementation": "in-memory"}))

    spark = session()
    ingested = date.today()
    for p in made:
        ingested = write_pipeline(spark, p, settings.warehouse_root)
    return Lake(settings, lake_prefix, made, ingested, session)


@dataclass
class Streamed:
    """A pipeline whose events went through Kafka and the real streaming job into ``lake``'s
    warehouse (bronze, quarantine, silver alerts) and Postgres ``fraud_alerts``."""

    pipeline: Any  # tests.integration.streaming.conftest.TestPipeline
    warehouse: str

    @property
    def id(self) -> int:
        return int(self.pipeline.id)


@pytest.fixture(scope="session")
def streamed(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Streamed]:
    """300 generated events (some malformed) on a new topic, 3 rules, one run of
    ``python -m streaming.job`` writing to the lake fixture's warehouse until every offset is
    committed; the pipeline is then paused, so the job stops on its own."""
    from streaming.producer import generate_events
    from tests.integration.streaming import conftest as st

    name = f"it-lake-stream-{uuid.uuid4().hex[:8]}"
    st.create_topic(name)
    with get_engine().begin() as conn:
        pid = conn.execute(insert(pipelines).values(
            name=name, kafka_topic=name, status="active", key_field="transaction_id",
            schema=st.SCHEMA).returning(pipelines.c.id)).scalar_one()
    tp = st.TestPipeline(pid, name)
    st._clear_redis(pid)
    for spec in st.base_rules()[:3]:  # amount > 5000, currency IN (...), user_id IS NULL
        tp.add_rule(spec)
    tp.produce(generate_events(st.SCHEMA, 300, 11, anomaly_share=0.3, malformed_share=0.08,
                               id_prefix=name))
    warehouse = lake.settings.warehouse_root
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAVA_TOOL_OPTIONS": st.TEST_JAVA_OPTIONS,
           "SENTINEL_REDIS_URL": st.REDIS_URL, "SENTINEL_WAREHOUSE": warehouse}
    job = st.JobProcess(pid, env, tmp_path_factory.mktemp("stream") / "job.log")
    checkpoint = st.archive_checkpoint(Path(warehouse), pid)
    try:
        job.start()
        st.wait_for(lambda: st.committed_offsets(checkpoint) == len(tp.sent), 900,
                    "every offset committed", job)
        tp.set_status("paused")
        assert job.wait_exit(180) == 0, job.log_tail()
        yield Streamed(tp, warehouse)
    finally:
        job.stop()
        st.delete_topic(name)
        st._clear_redis(pid)


@dataclass
class Incremental:
    """A payments pipeline of test_marts_incremental.py, written beside ``lake``'s two but not
    one of ``lake.pipelines``: that module appends events to one of its days afterwards."""

    pipeline: LakePipeline
    today: str  # the day its quarantine rows were ingested (ISO)


@pytest.fixture(scope="session")
def incremental(lake: Lake) -> Incremental:
    name = f"IT Incremental {uuid.uuid4().hex[:6]}"
    with get_engine().begin() as conn:
        proto = payments(0, name, 0)
        pid = conn.execute(insert(pipelines).values(
            name=name, kafka_topic=f"it-incr-{uuid.uuid4().hex[:8]}", status="active",
            key_field=proto.key_field, schema=proto.schema).returning(pipelines.c.id)
        ).scalar_one()
    p = payments(pid, name, pid * 100)
    spark = lake.session()
    today = write_pipeline(spark, p, lake.settings.warehouse_root).isoformat()
    return Incremental(p, today)


@dataclass
class DagsterBuild:
    """What ``dagster asset materialize`` of the dbt assets recorded in its instance."""

    run_status: str
    materialized: set[str]  # asset keys, e.g. "gold/fct_alerts_daily"
    checks: dict[str, bool]  # "<asset key>:<check name>" -> passed
    output: str
    home: Path  # its DAGSTER_HOME (test_marts_incremental.py runs one more build there)


@pytest.fixture(scope="session")
def dagster_build(lake: Lake, streamed: Streamed, incremental: Incremental,
                  tmp_path_factory: pytest.TempPathFactory) -> DagsterBuild:
    """``dagster asset materialize -m orchestration.definitions --select
    group:lakehouse_models --partition-range <BUILD_FROM>...<today>`` over the lake (known data,
    the streamed pipeline and ``incremental``), in a private DAGSTER_HOME; its run's events
    read back from that instance."""
    from dagster import DagsterEventType, DagsterInstance

    home = tmp_path_factory.mktemp("dagster-home")
    env = {**os.environ, "DAGSTER_HOME": str(home), "SENTINEL_WAREHOUSE": streamed.warehouse,
           "SENTINEL_LAKEHOUSE_SCHEMA_PREFIX": lake.prefix,
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    exe = Path(sys.executable).with_name("dagster")
    # the day facts are partitioned by day: one single-run range over every day of the test
    # data (streaming.producer's events from 2026-01-15, lake_data's from 2026-03-09, today's
    # quarantine); the first build of a mart creates it with every day anyway
    days = f"{BUILD_FROM}...{date.today().isoformat()}"
    proc = subprocess.run(
        [str(exe), "asset", "materialize", "-m", "orchestration.definitions",
         "--select", "group:lakehouse_models", "--partition-range", days],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1700)
    output = proc.stdout[-4000:] + proc.stderr[-8000:]
    assert proc.returncode == 0, f"{output}\n{sql_endpoint_log()}"
    with DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
    materialized = {e.event_specific_data.materialization.asset_key.to_user_string()
                    for e in events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION}
    checks = {}
    for e in events:
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            ev = e.event_specific_data
            checks[f"{ev.asset_key.to_user_string()}:{ev.check_name}"] = ev.passed
    return DagsterBuild(run.status.value, materialized, checks, output, home)
