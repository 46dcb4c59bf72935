"""The writer lease: one committer per Delta table at a time, across processes.

On S3/R2 the default Delta log store (``S3SingleDriverLogStore``) only guarantees mutual
exclusion inside one JVM: two drivers committing to the same table can both write version N and
silently lose a commit. Every committer (the stream around its appends, compaction around
OPTIMIZE/VACUUM) therefore holds a Postgres session-level advisory lock keyed by the table path
while it commits. The lock lives on a dedicated connection, so a crashed holder releases it
the moment its connection drops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from catalog.settings import get_settings

log = logging.getLogger(__name__)

# First key of the two-key advisory lock: keeps our locks apart from anyone else's.
LEASE_NAMESPACE = 0x5E17
APP_PREFIX = "sentinel-lease"


class LeaseUnavailable(TimeoutError):
    """Another writer held the table's lease for longer than we were willing to wait."""

    def __init__(self, table_path: str, waited: float, holder: str | None) -> None:
        self.table_path = table_path
        self.holder = holder
        who = f"held by {holder}" if holder else "held by another writer"
        super().__init__(f"writer lease for {table_path} {who}; gave up after {waited:.1f}s")


def normalize(table_path: str) -> str:
    """The lease key of a table: its URI without trailing slashes (s3:// counts as s3a://)."""
    path = table_path.rstrip("/")
    if path.startswith("s3://"):
        path = "s3a://" + path[len("s3://"):]
    return path


def _connect(dsn: str | None, owner: str) -> Connection:
    engine = create_engine(
        dsn or get_settings().database_dsn,
        poolclass=NullPool,
        connect_args={"application_name": f"{APP_PREFIX}:{owner}"[:63]},
    )
    conn = engine.connect()
    conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


def _try_lock(conn: Connection, key: str) -> bool:
    return bool(conn.execute(
        text("select pg_try_advisory_lock(:ns, hashtext(:key))"),
        {"ns": LEASE_NAMESPACE, "key": key},
    ).scalar())


def current_holder(conn: Connection, table_path: str) -> str | None:
    """``application_name (pid N)`` of the session holding the table's lease, if any."""
    row = conn.execute(
        text(
            "select a.application_name, a.pid from pg_locks l "
            "join pg_stat_activity a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted "
            "and l.classid = :ns and l.objid = (hashtext(:key)::bigint & 4294967295)::oid "
            "and l.objsubid = 2 limit 1"
        ),
        {"ns": LEASE_NAMESPACE, "key": normalize(table_path)},
    ).first()
    if row is None:
        return None
    name = str(row.application_name or "").removeprefix(f"{APP_PREFIX}:")
    return f"{name or 'unknown'} (backend pid {row.pid})"


@contextmanager
def writer_lease(
    table_path: str,
    *,
    owner: str = "writer",
    timeout: float = 60.0,
    poll: float = 0.5,
    dsn: str | None = None,
) -> Iterator[None]:
    """Hold the table's writer lease for the ``with`` block.

    Waits up to ``timeout`` seconds (0 = a single try) and raises ``LeaseUnavailable`` naming
    the current holder when it cannot get it. ``owner`` is shown to whoever waits on us.
    """
    key = normalize(table_path)
    conn = _connect(dsn, owner)
    try:
        started = time.monotonic()
        while not _try_lock(conn, key):
            waited = time.monotonic() - started
            if waited >= timeout:
                raise LeaseUnavailable(key, waited, current_holder(conn, key))
            time.sleep(min(poll, max(timeout - waited, 0.01)))
        waited = time.monotonic() - started
        if waited > 1:
            log.info("writer lease for %s acquired after %.1fs", key, waited)
        try:
            yield
        finally:
            try:
                conn.execute(
                    text("select pg_advisory_unlock(:ns, hashtext(:key))"),
                    {"ns": LEASE_NAMESPACE, "key": key},
                )
            except DBAPIError as exc:  # the session is gone, and its lock with it
                log.warning("writer lease for %s: connection lost before release (%s)",
                            key, str(exc).splitlines()[0])
    finally:
        conn.close()
        conn.engine.dispose()
