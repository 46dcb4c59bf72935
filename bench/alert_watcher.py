"""A separate process that notes when each alert becomes visible in Redis and in Postgres.

    .venv/bin/python bench/alert_watcher.py --pipeline-id N --out FILE

Redis: the XADD entry id of ``fraud:alerts:<pipeline>`` carries the server's millisecond clock
at the moment the alert became visible. Postgres: ``fraud_alerts`` is polled every 20 ms for new
rows of the pipeline; the poll time is when they became visible (±20 ms). On SIGTERM/SIGINT it
writes ``{"redis": {event_id: ms}, "postgres": {event_id: ms}}`` to FILE and exits.
"""

from __future__ import annotations

import argparse
import json
import signal
import time

import psycopg2
import redis

from catalog.settings import get_settings

POLL_SECONDS = 0.02


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipeline-id", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    settings = get_settings()
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    r = redis.Redis.from_url(settings.redis_dsn, decode_responses=True)
    pg = psycopg2.connect(settings.database_dsn.replace("postgresql+psycopg2", "postgresql"))
    pg.autocommit = True
    stream, last_entry, last_id = f"fraud:alerts:{args.pipeline_id}", "0-0", 0
    seen_redis: dict[str, int] = {}
    seen_pg: dict[str, int] = {}
    print("watching", flush=True)  # noqa: T201 - the parent waits for this line
    while not stop:
        for _, entries in r.xread({stream: last_entry}, count=10_000, block=10) or []:
            for entry_id, fields in entries:
                last_entry = entry_id
                seen_redis.setdefault(fields["event_id"], int(entry_id.split("-")[0]))
        with pg.cursor() as cur:
            cur.execute("select id, event_id from fraud_alerts where pipeline_id = %s and id > %s",
                        (args.pipeline_id, last_id))
            now_ms = int(time.time() * 1000)
            for row_id, event_id in cur.fetchall():
                last_id = max(last_id, row_id)
                seen_pg.setdefault(event_id, now_ms)
        time.sleep(POLL_SECONDS)
    with open(args.out, "w") as fh:
        json.dump({"redis": seen_redis, "postgres": seen_pg}, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
