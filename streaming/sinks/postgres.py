"""Alerts into Postgres ``fraud_alerts`` for the API and dashboards.

A batch's alerts are few: they are ``COPY``-ed into a temporary table and inserted with
``ON CONFLICT (alert_id) DO NOTHING`` in one transaction, so a replayed batch adds nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from catalog.db import get_engine
from streaming.alerts import ALERT_COLUMNS
from streaming.sinks.retry import with_retry

_STAGE = """
CREATE TEMP TABLE _alerts_stage (
  alert_id text, pipeline_id integer, rule_id integer, rule_version integer, severity text,
  score double precision, rule_description text, event_id text, event_time timestamptz,
  alert_timestamp timestamptz, transaction_data jsonb, kafka_partition integer,
  kafka_offset bigint
) ON COMMIT DROP
"""
_COLS = ", ".join(ALERT_COLUMNS)
_INSERT = (
    f"INSERT INTO fraud_alerts ({_COLS}) SELECT {_COLS} FROM _alerts_stage "
    "ORDER BY kafka_partition, kafka_offset, rule_id ON CONFLICT (alert_id) DO NOTHING"
)


def _cell(value: Any) -> Any:
    if value is None:
        return r"\N"
    if isinstance(value, datetime):
        return value.isoformat() + ("" if value.tzinfo else "+00:00")
    return value


def _csv(rows: Sequence[dict[str, Any]]) -> io.StringIO:
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in ALERT_COLUMNS])
    buf.seek(0)
    return buf


def _write_once(rows: Sequence[dict[str, Any]]) -> int:
    conn = get_engine().raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(_STAGE)
            cur.copy_expert(
                f"COPY _alerts_stage ({_COLS}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
                _csv(rows),
            )
            cur.execute(_INSERT)
            inserted = cur.rowcount
        conn.commit()
        return inserted
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


def write_alerts(rows: Sequence[dict[str, Any]]) -> int:
    """Insert the alerts not yet in ``fraud_alerts``; returns how many were new."""
    if not rows:
        return 0
    return with_retry("postgres fraud_alerts", lambda: _write_once(rows))
