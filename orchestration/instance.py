"""The Dagster instance of the local stack: ``$DAGSTER_HOME/dagster.yaml`` (written idempotently).

``python -m orchestration.instance --home .sentinel/dagster [--storage postgres|sqlite]``.
Postgres storage uses a ``dagster`` database on the catalog's server (created when missing);
SQLite keeps everything under the home folder. Streams are long-running runs, so the queue
allows a handful at once on a small machine and one compaction/check run at a time.
Telemetry is off, and so is the UI's first-visit "Join the Dagster community" dialog (``nux``):
the stack is loopback-only and a newcomer should land on the runs page, not a sign-up form.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from catalog.settings import get_settings

MAX_CONCURRENT_RUNS = int(os.environ.get("SENTINEL_DAGSTER_MAX_RUNS", "6"))


def ensure_database(name: str = "dagster") -> str:
    """Create the storage database next to the catalog when missing; returns its URL."""
    url = make_url(get_settings().database_dsn)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("select 1 from pg_database where datname = :n"),
                              {"n": name}).scalar()
        if not exists:
            conn.execute(text(f'create database "{name}"'))
    admin.dispose()
    return url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)


def render(storage: str, home: Path, postgres_url: str | None = None) -> str:
    """The dagster.yaml text for ``storage`` (``postgres`` needs ``postgres_url``)."""
    if storage == "postgres":
        store = f'storage:\n  postgres:\n    postgres_url: "{postgres_url}"\n'
    else:
        store = f'storage:\n  sqlite:\n    base_dir: "{home / "storage"}"\n'
    return store + f"""run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {MAX_CONCURRENT_RUNS}
    dequeue_interval_seconds: 2
    tag_concurrency_limits:
      - key: sentinel/kind
        value: compaction
        limit: 1
      - key: sentinel/kind
        value: checks
        limit: 1
run_launcher:
  module: dagster.core.launcher
  class: DefaultRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 420
  poll_interval_seconds: 20
sensors:
  use_threads: true
  num_workers: 2
schedules:
  use_threads: true
  num_workers: 2
telemetry:
  enabled: false
nux:
  enabled: false
"""


def write(home: Path, storage: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    url = ensure_database() if storage == "postgres" else None
    target = home / "dagster.yaml"
    content = render(storage, home, url)
    if not target.exists() or target.read_text() != content:
        target.write_text(content)
    target.chmod(0o600)  # holds the storage password
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--storage", choices=("postgres", "sqlite"), default="postgres")
    args = ap.parse_args(argv)
    path = write(args.home, args.storage)
    sys.stdout.write(f"{path} ({args.storage} storage)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
