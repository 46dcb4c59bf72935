"""Test-wide settings: integration tests use their own catalog database, `sentinel_test`."""

from __future__ import annotations

import os

TEST_DATABASE = os.environ.setdefault("SENTINEL_TEST_DATABASE", "sentinel_test")
os.environ.setdefault(
    "SENTINEL_DATABASE_URL",
    f"postgresql+psycopg2://sentinel:sentinel@127.0.0.1:5432/{TEST_DATABASE}",
)
