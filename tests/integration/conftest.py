"""Fixtures on the real services started by `make services` (Postgres, Redis, Kafka, S3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from catalog.api_keys import create_key
from catalog.db import get_engine
from catalog.migrate import upgrade
from catalog.settings import get_settings


def _recreate_database() -> None:
    url = make_url(get_settings().database_dsn)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = :db and pid <> pg_backend_pid()"
            ),
            {"db": url.database},
        )
        name = conn.dialect.identifier_preparer.quote(str(url.database))
        conn.execute(text("drop database if exists " + name))
        conn.execute(text("create database " + name))
    admin.dispose()


@pytest.fixture(scope="session")
def catalog_db() -> Iterator[None]:
    """A freshly migrated catalog database for this test session."""
    _recreate_database()
    upgrade()
    yield
    get_engine().dispose()


@pytest.fixture(scope="session")
def api_keys(catalog_db: None) -> dict[str, str]:
    """One key per role: {'admin': ..., 'analyst': ..., 'viewer': ...}."""
    suffix = uuid.uuid4().hex[:8]
    with get_engine().begin() as conn:
        return {
            role: create_key(conn, name=f"test-{role}-{suffix}", role=role)
            for role in ("admin", "analyst", "viewer")
        }


@pytest.fixture(scope="session")
def client(catalog_db: None) -> Iterator[TestClient]:
    from api.main import app

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names and topics created by one test."""
    return uuid.uuid4().hex[:10]
