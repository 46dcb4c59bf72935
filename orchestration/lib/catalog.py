"""The catalog as a Dagster resource: the control plane's Postgres, shared by every integration."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dagster import ConfigurableResource
from sqlalchemy import Connection, Engine, create_engine, select

from catalog.settings import get_settings
from catalog.tables import pipelines as pipelines_table


@lru_cache
def _engine(dsn: str) -> Engine:
    return create_engine(dsn, pool_pre_ping=True, pool_size=2, max_overflow=4)


def pipelines(conn: Connection) -> list[dict[str, Any]]:
    """Every pipeline row (id, name, topic, status, key field, schema …)."""
    table = pipelines_table
    rows = conn.execute(select(table).order_by(table.c.id)).mappings().all()
    return [dict(r) for r in rows]


class CatalogResource(ConfigurableResource):
    """The control plane: pipelines (desired state), stream_runs, backtests, alerts."""

    database_url: str | None = None

    @property
    def dsn(self) -> str:
        return self.database_url or get_settings().database_dsn

    @property
    def engine(self) -> Engine:
        return _engine(self.dsn)

    def pipelines(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return pipelines(conn)

    def call(self, fn, *args, **kwargs):
        """Run ``fn(connection, *args, **kwargs)`` (a query function) inside a transaction."""
        with self.engine.begin() as conn:
            return fn(conn, *args, **kwargs)
