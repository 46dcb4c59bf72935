"""Registers every pipeline's Delta tables in the lakehouse SQL endpoint, with the union views.

For each pipeline of the catalog, through the Spark Thrift Server (PyHive; no Spark here), the
tables and views of ``orchestration.lake.views``: external Delta tables at the stream's paths.

Idempotent and cheap when nothing changed (a fingerprint of the catalog rows and registered
tables is kept in the views' TBLPROPERTIES): call it on every pipeline create / schema change
and on every sensor tick. A table whose Delta log does not exist yet (stream never started) is
reported as pending and registered by a later call; nothing here writes to a Delta table.
Registrations of pipelines that were deleted or renamed are dropped (metastore only: they are
external tables). Env: ``SENTINEL_THRIFT_HOST`` [127.0.0.1], ``SENTINEL_THRIFT_PORT`` [10000],
``SENTINEL_LAKEHOUSE_SCHEMA_PREFIX`` [''] (prefixes bronze/silver, e.g. for tests).

    python -m orchestration.lake.registration sync [--force]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyhive import hive
from sqlalchemy import select

from catalog.db import get_engine
from catalog.settings import Settings, get_settings
from catalog.tables import pipelines
from orchestration.lake.delta_log import has_commits, is_s3
from orchestration.lake.views import (
    FINGERPRINT,
    KINDS,
    UNION_VIEWS,
    PipelineRow,
    Table,
    desired_tables,
    fingerprint,
    quote_ident,
    sql_string,
    union_sql,
)

log = logging.getLogger(__name__)

_OURS = re.compile(r"^[a-z0-9_]+_(events|quarantine|alerts)$")


class LakehouseUnavailable(RuntimeError):
    """The SQL endpoint does not answer."""


@dataclass
class SyncReport:
    """What one ``register_all`` call found and did."""

    registered: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    views_rebuilt: bool = False
    fingerprint: str = ""

    def summary(self) -> str:
        return (f"{len(self.registered)} tables registered ({len(self.created)} new, "
                f"{len(self.dropped)} dropped, {len(self.pending)} pending), views "
                f"{'rebuilt' if self.views_rebuilt else 'unchanged'}")


def schema_prefix() -> str:
    prefix = os.environ.get("SENTINEL_LAKEHOUSE_SCHEMA_PREFIX", "").lower()
    if prefix and not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", prefix):
        raise ValueError("SENTINEL_LAKEHOUSE_SCHEMA_PREFIX: lowercase letters, digits, _")
    return prefix


def connect(host: str | None = None, port: int | None = None, auth: str = "NONE") -> Any:
    """A PyHive connection to the Spark Thrift Server (auth NONE = SASL PLAIN, no password)."""
    host = host or os.environ.get("SENTINEL_THRIFT_HOST", "127.0.0.1")
    port = port or int(os.environ.get("SENTINEL_THRIFT_PORT", "10000"))
    try:
        return hive.connect(host=host, port=port, username="sentinel", auth=auth)
    except Exception as exc:
        raise LakehouseUnavailable(
            f"no SQL endpoint on {host}:{port} ({type(exc).__name__}); start it with "
            "`bash deploy/local/thrift.sh start` (log .sentinel/logs/thrift.log)") from exc


class Sql:
    """Runs statements on one Thrift session."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.cursor = conn, conn.cursor()

    def rows(self, statement: str) -> list[tuple]:
        log.debug("sql: %s", statement)
        self.cursor.execute(statement)
        return list(self.cursor.fetchall()) if self.cursor.description else []

    def close(self) -> None:
        self.cursor.close()
        self.conn.close()


def load_pipelines() -> list[PipelineRow]:
    """Every pipeline of the catalog named by the settings (any status)."""
    cols = (pipelines.c.id, pipelines.c.name, pipelines.c.key_field, pipelines.c.schema,
            pipelines.c.schema_version)
    with get_engine().connect() as conn:
        rows = conn.execute(select(*cols).order_by(pipelines.c.id)).all()
    return [PipelineRow(r.id, r.name, r.key_field, list(r.schema), r.schema_version) for r in rows]


def delta_exists(location: str, settings: Settings) -> bool:
    """True when ``location`` holds a Delta log (checked on the file system / S3, not Spark)."""
    if not is_s3(location):
        return has_commits(location)
    import boto3  # only a warehouse on S3/R2 needs the client

    secret = settings.s3_secret_access_key
    client = boto3.client(
        "s3", endpoint_url=settings.s3_endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=(settings.s3_access_key_id.get_secret_value()
                           if settings.s3_access_key_id else None),
        aws_secret_access_key=secret.get_secret_value() if secret else None)
    return has_commits(location, client)


def _describe(sql: Sql, table: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(columns [(name, type)], detail {Location, Type, ...}) of a registered table."""
    columns: list[tuple[str, str]] = []
    detail: dict[str, str] = {}
    in_columns = True
    for name, dtype, *_ in sql.rows(f"describe table extended {table}"):
        name = (name or "").strip()
        if not name or name.startswith("#"):
            in_columns = False
            continue
        if in_columns:
            columns.append((name, (dtype or "").strip().lower()))
        else:
            detail[name] = (dtype or "").strip()
    return columns, detail


def _same_location(a: str, b: str) -> bool:
    def norm(x: str) -> str:
        return re.sub(r"^file:(//)?", "", x).rstrip("/")
    return norm(a) == norm(b)


def _stored_fingerprint(sql: Sql, view: str) -> str | None:
    try:
        rows = sql.rows(f"show tblproperties {view} ({sql_string(FINGERPRINT)})")
    except Exception:
        return None
    return rows[0][1] if rows and rows[0][0] == FINGERPRINT else None


def _registered(sql: Sql, schemas: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for schema in schemas:
        try:
            out[schema] = {r[1] for r in sql.rows(f"show tables in {quote_ident(schema)}")
                           if not r[2]}
        except Exception:
            out[schema] = set()
    return out


def register_all(*, settings: Settings | None = None, sql: Sql | None = None,
                 force: bool = False) -> SyncReport:
    """Register every pipeline's tables and (re)build the union views; see the module doc."""
    settings = settings or get_settings()
    root, prefix = settings.warehouse_root, schema_prefix()
    rows = load_pipelines()
    wanted = desired_tables(rows, root, prefix)
    own = sql is None
    sql = sql or Sql(connect())
    try:
        return _sync(sql, settings, rows, wanted, prefix, force)
    finally:
        if own:
            sql.close()


def _sync(sql: Sql, settings: Settings, rows: list[PipelineRow], wanted: list[Table],
          prefix: str, force: bool) -> SyncReport:
    report = SyncReport()
    schemas = sorted({prefix + s for s in KINDS.values()})
    registered = _registered(sql, schemas)
    present = [t for t in wanted if t.name in registered[t.schema]
               or delta_exists(t.location, settings)]
    views = {k: f"{quote_ident(prefix + KINDS[k])}.{quote_ident(v)}"
             for k, v in UNION_VIEWS.items()}
    report.fingerprint = fingerprint(rows, [t.qualified for t in present], settings.warehouse_root)
    report.pending = [t.qualified for t in wanted if t not in present]
    if not force and all(_stored_fingerprint(sql, v) == report.fingerprint
                         for v in views.values()):
        report.registered = [t.qualified for t in present]
        return report
    for schema in schemas:
        sql.rows(f"create schema if not exists {quote_ident(schema)}")
    usable: dict[str, list[tuple[Table, list[tuple[str, str]]]]] = {k: [] for k in KINDS}
    for t in present:
        columns = _ensure_table(sql, settings, t, t.name in registered[t.schema], report)
        if columns is None:
            report.pending.append(t.qualified)
        else:
            usable[t.kind].append((t, columns))
            report.registered.append(t.qualified)
    names = {(t.schema, t.name) for t in wanted}
    for schema, tables in registered.items():
        for name in sorted(tables):
            if _OURS.match(name) and (schema, name) not in names:
                _drop_registration(sql, f"{quote_ident(schema)}.{quote_ident(name)}", report)
    fp = fingerprint(rows, report.registered, settings.warehouse_root)
    complete = not [t for t in present if t.qualified not in report.registered]
    for kind, view in views.items():
        props = f"tblproperties ({sql_string(FINGERPRINT)} = {sql_string(fp if complete else '')})"
        sql.rows(f"create or replace view {view} {props} as\n{union_sql(kind, usable[kind])}")
    report.views_rebuilt, report.fingerprint = True, fp
    log.info("lakehouse tables: %s", report.summary())
    return report


def _ensure_table(sql: Sql, settings: Settings, t: Table, is_registered: bool,
                  report: SyncReport) -> list[tuple[str, str]] | None:
    """Registers ``t`` (re-pointing it when its location moved); its columns, or None."""
    if is_registered:
        try:
            columns, detail = _describe(sql, t.qualified)
            if _same_location(detail.get("Location", ""), t.location):
                return columns
            _drop_registration(sql, t.qualified, report)
        except Exception as exc:
            log.warning("%s is registered but unreadable (%s); re-registering", t.qualified,
                        str(exc)[:200])
            sql.rows(f"drop table if exists {t.qualified}")
    # never let CREATE TABLE make an empty schema-less Delta table at the stream's path
    if not delta_exists(t.location, settings):
        return None
    try:
        sql.rows(f"create table if not exists {t.qualified} using delta "
                 f"location {sql_string(t.location)}")
        report.created.append(t.qualified)
        return _describe(sql, t.qualified)[0]
    except Exception as exc:
        log.warning("cannot register %s at %s: %s", t.qualified, t.location, str(exc)[:300])
        return None


def _drop_registration(sql: Sql, qualified: str, report: SyncReport) -> None:
    """Drops an external table's metastore entry (never its data: managed tables are kept)."""
    try:
        _, detail = _describe(sql, qualified)
        if detail.get("Type", "").upper() != "EXTERNAL":
            log.warning("not dropping %s: a %s table", qualified, detail.get("Type"))
            return
    except Exception:
        pass  # its location is gone: only the metastore entry is left to drop
    sql.rows(f"drop table if exists {qualified}")
    report.dropped.append(qualified)


def drop_schemas(prefix: str, sql: Sql | None = None) -> None:
    """Drops ``<prefix>bronze/silver/...`` with everything in them (test clean-up)."""
    if not prefix:
        raise ValueError("refusing to drop the unprefixed production schemas")
    own = sql is None
    sql = sql or Sql(connect())
    try:
        for row in sql.rows("show schemas"):
            if row[0].startswith(prefix):
                sql.rows(f"drop schema if exists {quote_ident(row[0])} cascade")
    finally:
        if own:
            sql.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orchestration.lake.registration",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["sync"])
    ap.add_argument("--force", action="store_true", help="rebuild even when unchanged")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pyhive").setLevel(logging.WARNING)  # it logs every statement at INFO
    try:
        report = register_all(force=args.force)
    except LakehouseUnavailable as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return 2
    sys.stdout.write(report.summary() + "\n")
    for name in report.pending:
        sys.stdout.write(f"  pending (no Delta table yet): {name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
