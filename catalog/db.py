"""Connections to the catalog database (one engine per process)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine

from catalog.settings import get_settings


@lru_cache
def get_engine() -> Engine:
    """The process-wide SQLAlchemy engine for the catalog (pooled, pre-pinged)."""
    return create_engine(
        get_settings().database_dsn, pool_pre_ping=True, pool_size=10, max_overflow=20
    )


@contextmanager
def transaction() -> Iterator[Connection]:
    """A connection inside one transaction: committed on success, rolled back on error."""
    with get_engine().begin() as conn:
        yield conn
