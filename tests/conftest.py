"""Test-wide settings and scheduling.

Integration tests use their own catalog database, ``sentinel_test``. ``make test`` runs two
pytest-xdist workers (``--dist loadgroup``): each worker (``gw0``, ``gw1``) gets its own catalog
database and Redis databases (pipeline ids, and so Redis keys, repeat across databases), and
each test file runs whole on one worker, so module and session fixtures are built once. The
lakehouse and Superset suites share the SQL endpoint and the lake fixtures: they form one group,
scheduled first with the end-to-end suite so that the two longest groups start at once.
"""

from __future__ import annotations

import os

import pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_INDEX = int(WORKER[2:]) if WORKER.startswith("gw") and WORKER[2:].isdigit() else 0

TEST_DATABASE = os.environ.setdefault(
    "SENTINEL_TEST_DATABASE", f"sentinel_test_{WORKER}" if WORKER else "sentinel_test")
os.environ.setdefault(
    "SENTINEL_DATABASE_URL",
    f"postgresql+psycopg2://sentinel:sentinel@127.0.0.1:5432/{TEST_DATABASE}",
)
if WORKER:
    os.environ.setdefault("SENTINEL_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{13 - _INDEX}")
    os.environ.setdefault("SENTINEL_REDIS_URL", f"redis://127.0.0.1:6379/{9 - _INDEX}")

# (group, order): lower orders are scheduled first
_GROUPS = {"tests/integration/lakehouse/": ("lake", 0), "tests/integration/superset/": ("lake", 0),
           "tests/e2e/": ("e2e", 1)}


def _group(nodeid: str) -> tuple[str, int]:
    for prefix, group in _GROUPS.items():
        if nodeid.startswith(prefix):
            return group
    return nodeid.split("::", 1)[0], 2  # a file is a group of its own


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its xdist group and put the longest groups first (stable order)."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item.nodeid)[0]))
    items.sort(key=lambda item: _group(item.nodeid)[1])
