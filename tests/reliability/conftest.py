"""Outage drills: the streaming engine under faults, with exact counts afterwards.

The drills reuse the streaming fixtures (catalog rows, topics, the job process, the Spark
reader, the independent expectations) and add what a drill needs: private services that can
be stopped without touching the shared ones, a supervisor that restarts a failed job the way
the Dagster sensor does, and a report of how long recovery took.

``SENTINEL_DRILL_LONG=1`` (``make test-reliability``) runs the long form: longer outages and
more kills. The short form runs in ``make test``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from catalog.migrate import upgrade
from catalog.settings import get_settings
from tests.integration.streaming.conftest import (  # noqa: F401  (fixtures, by name)
    ROOT,
    job_factory,
    kit,
    make_pipeline,
    spark_reader,
)
from tests.reliability.drills import LONG, PrivateKafka, PrivatePostgres, PrivateRedis

REPORT = ROOT / ".sentinel" / "logs" / "drills.jsonl"


@pytest.fixture(scope="session")
def catalog_db() -> Iterator[None]:
    """The test catalog, created when missing and migrated -- never dropped here: in one
    pytest session with tests/integration, their fixture already made it fresh."""
    url = make_url(get_settings().database_dsn)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("select 1 from pg_database where datname = :d"),
                              {"d": url.database}).first()
        if not exists:
            name = conn.dialect.identifier_preparer.quote(str(url.database))
            conn.execute(text("create database " + name))
    admin.dispose()
    upgrade()
    yield


@pytest.fixture()
def report(request, capsys) -> Callable[..., None]:
    """Print a drill's figures (shown even when pytest captures output) and append them to
    ``.sentinel/logs/drills.jsonl``."""

    def emit(**figures) -> None:
        line = {"drill": request.node.name, "long": LONG, "at": time.time(), **figures}
        with capsys.disabled():
            print(f"\n[drill] {json.dumps(line)}")
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        with REPORT.open("a") as fh:
            fh.write(json.dumps(line) + "\n")

    return emit


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def private_catalog(monkeypatch) -> Iterator[PrivatePostgres]:
    """A private, migrated Postgres that this test process and its jobs use as the catalog
    (pipelines, rules, stream_runs, fraud_alerts, writer leases) for the test's duration."""
    from catalog.db import get_engine

    server = PrivatePostgres()
    try:
        server.init()
        get_engine().dispose()
        monkeypatch.setenv("SENTINEL_DATABASE_URL", server.url)
        get_settings.cache_clear()
        get_engine.cache_clear()
        yield server
    finally:
        get_engine().dispose()
        monkeypatch.undo()
        get_settings.cache_clear()
        get_engine.cache_clear()
        server.stop()


@pytest.fixture()
def private_kafka(tmp_path: Path) -> Iterator[PrivateKafka]:
    broker = PrivateKafka(tmp_path / "kafka")
    broker.init()
    broker.start()
    yield broker
    broker.stop()
