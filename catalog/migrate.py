"""Bring the catalog database to the newest schema: `python -m catalog.migrate`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from alembic import command
from alembic.config import Config

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


def alembic_config() -> Config:
    """Alembic config pointing at this package's migrations."""
    return Config(str(ALEMBIC_INI))


def upgrade(revision: str = "head") -> None:
    """Apply every pending migration up to `revision` (idempotent)."""
    command.upgrade(alembic_config(), revision)


def main() -> int:
    started = time.monotonic()
    try:
        upgrade()
    except Exception as exc:  # noqa: BLE001 - report any failure as a clear message
        sys.stderr.write(f"catalog migration failed: {type(exc).__name__}: {exc}\n")
        return 1
    sys.stdout.write(f"catalog schema is at head ({time.monotonic() - started:.1f}s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
