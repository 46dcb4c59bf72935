"""Rule-change notifications: a stream hears of a pipeline's rule change the moment it commits.

Every change that bumps ``pipelines.rules_version`` also sends ``NOTIFY sentinel_rules,
'<pipeline id>'`` in the same transaction (Postgres delivers it at commit, never for a rolled
back change). A stream's rule watcher listens and wakes at once instead of waiting for its next
poll; the poll stays as the fallback, so a lost notification (a dropped listening connection,
a restart of Postgres) only delays a change by one poll interval.
"""

from __future__ import annotations

import logging
import select as io_select
from typing import Any

from sqlalchemy import Connection, func
from sqlalchemy import select as sql_select

from catalog.db import get_engine

CHANNEL = "sentinel_rules"

log = logging.getLogger(__name__)


def notify_rules_changed(conn: Connection, pipeline_id: int) -> None:
    """Announce, at the commit of ``conn``'s transaction, that the pipeline's rules changed."""
    conn.execute(sql_select(func.pg_notify(CHANNEL, str(pipeline_id))))


class RuleChangeListener:
    """A dedicated catalog connection listening for one pipeline's rule changes.

    ``wait(timeout)`` returns True as soon as a change of the pipeline is announced, False when
    ``timeout`` passed without one. A broken connection is dropped and re-opened on a later
    call; until then ``wait`` just sleeps (the caller polls anyway).
    """

    def __init__(self, pipeline_id: int) -> None:
        self.payload = str(pipeline_id)
        self._raw: Any = None  # the driver's (psycopg2) connection

    def _connect(self) -> Any:
        pooled = get_engine().raw_connection()
        dbapi: Any = pooled.driver_connection
        pooled.detach()  # a private session: its LISTEN state never goes back to the pool
        dbapi.autocommit = True
        with dbapi.cursor() as cur:
            cur.execute("LISTEN " + CHANNEL)
        self._raw = dbapi
        return dbapi

    def _connection(self) -> Any:
        if self._raw is not None:
            return self._raw
        try:
            return self._connect()
        except Exception as exc:
            log.warning("rule changes: cannot listen (polling only until it can): %s", exc)
            return None

    def wait(self, timeout: float) -> bool:
        conn = self._connection()
        if conn is None:
            io_select.select([], [], [], timeout)
            return False
        try:
            ready, _, _ = io_select.select([conn], [], [], timeout)
            if not ready:
                return False
            conn.poll()
            heard = [n.payload for n in conn.notifies]
            conn.notifies.clear()
        except Exception as exc:
            log.warning("rule changes: listening connection lost: %s", exc)
            self.close()
            return False
        return self.payload in heard

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.close()
            except Exception as exc:  # already broken: nothing left to release
                log.debug("rule changes: close: %s", exc)
