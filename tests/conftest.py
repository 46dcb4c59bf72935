"""Test-wide settings and scheduling.

Integration tests use their own catalog database, ``sentinel_test``. ``make test`` runs two
xdist workers (``--dist loadgroup``; ``PYTEST_WORKERS=0`` runs one process): each worker
(``gw0``, ``gw1``) gets its own catalog database, Redis databases and local warehouse (pipeline
ids, and so Redis keys and ``pipeline_<id>`` folders, repeat across databases), and each test
file runs whole on one worker, so module and session fixtures are built once. The lakehouse and
Superset suites share the SQL endpoint and the lake fixtures: they form one group, scheduled
first with the end-to-end suite so that the two longest groups start at once; the outage drills
follow (each its own group: they stop only private services, so two can run at once), then
every other file. Without xdist nothing is regrouped or reordered.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_INDEX = int(WORKER[2:]) if WORKER.startswith("gw") and WORKER[2:].isdigit() else 0
# xdist workers inherit the controller's environment, which this file already changed: the
# names it set itself are listed here so that a worker replaces them with its own.
_MARK = "_SENTINEL_TEST_DEFAULTS"
_defaulted = set(filter(None, os.environ.get(_MARK, "").split(",")))


def _given(name: str) -> str | None:
    """The value the user set (None when unset or set by this file)."""
    return None if name in _defaulted else os.environ.get(name)


def _set(name: str, value: str) -> str:
    os.environ[name] = value
    _defaulted.add(name)
    return value


_suffix = f"_{WORKER}" if WORKER else ""
TEST_DATABASE = _set("SENTINEL_TEST_DATABASE",
                     (_given("SENTINEL_TEST_DATABASE") or "sentinel_test") + _suffix)
if (_url := _given("SENTINEL_DATABASE_URL")) is None:
    _set("SENTINEL_DATABASE_URL",
         f"postgresql+psycopg2://sentinel:sentinel@127.0.0.1:5432/{TEST_DATABASE}")
elif WORKER:  # a given catalog URL: each worker on its own database of that server
    from sqlalchemy.engine import make_url

    _db = make_url(_url)
    _set("SENTINEL_DATABASE_URL", _db.set(database=f"{_db.database}{_suffix}")
         .render_as_string(hide_password=False))


def _worker_redis(name: str, default_db: int) -> None:
    """Worker N uses Redis database ``db - N`` (of the given URL, or of the default)."""
    base, _, db = (_given(name) or f"redis://127.0.0.1:6379/{default_db}").rpartition("/")
    _set(name, f"{base}/{int(db or 0) - _INDEX}")


if WORKER:  # pipeline ids repeat across the workers' databases: Redis keys and the lake's
    # pipeline_<id> folders must not collide
    _worker_redis("SENTINEL_TEST_REDIS_URL", 13)
    _worker_redis("SENTINEL_REDIS_URL", 9)
    if (_wh := _given("SENTINEL_WAREHOUSE")) is not None:
        _set("SENTINEL_WAREHOUSE", f"{_wh.rstrip('/')}/{WORKER}")
    else:
        _home = os.environ.get("SENTINEL_HOME") or str(Path(__file__).resolve().parents[1]
                                                       / ".sentinel")
        _set("SENTINEL_WAREHOUSE", f"{_home}/test-warehouse-{WORKER}")
os.environ[_MARK] = ",".join(sorted(_defaulted))

# (group, order): lower orders are scheduled first; group None: each file is a group of its own
# the first-run checks (tests/integration/superset/test_first_run.py) use the Superset suite's
# fixtures: lake group
_GROUPS: dict[str, tuple[str | None, int]] = {
    "tests/integration/lakehouse/": ("lake", 0), "tests/integration/superset/": ("lake", 0),
    "tests/e2e/": ("e2e", 1), "tests/reliability/": (None, 2)}


def _group(nodeid: str) -> tuple[str, int]:
    file = nodeid.split("::", 1)[0]
    for prefix, (group, order) in _GROUPS.items():
        if nodeid.startswith(prefix):
            return group or file, order
    return file, 3


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist: mark each test with its group and put the longest groups first."""
    if not WORKER:
        return
    groups = {id(item): _group(item.nodeid) for item in items}  # before the ids get a suffix
    for item in items:
        name = groups[id(item)][0]
        item.add_marker(pytest.mark.xdist_group(name))
        _suffix_group(item, name)
    items.sort(key=lambda item: groups[id(item)][1])


def _suffix_group(item: pytest.Item, name: str) -> None:
    """The ``@<group>`` suffix xdist's scheduler groups by. xdist 3.8 writes it to
    ``item._nodeid``, which pytest 9.2 no longer reads (the id is ``item._id``, a NodeId):
    without this, ``--dist loadgroup`` silently spreads one file over both workers."""
    from _pytest.nodeid import NodeId

    if hasattr(item, "_id") and not item.nodeid.endswith(f"@{name}"):
        item._id = NodeId.parse(f"{item.nodeid}@{name}")


class SparkSlot:
    """The test process's one Spark driver, held by one configuration at a time.

    A Python process has one driver JVM (its classpath and Java options are fixed when it
    starts) and ``getOrCreate`` hands back the running session whatever the builder asks for.
    Under xdist one worker runs suites that need different drivers (the jars, s3a credentials,
    Delta or none) in any order, so each suite takes the driver through ``acquire``: the same
    owner gets its running session back; another owner's session is stopped and its JVM shut
    down before the caller's session is built.
    """

    def __init__(self) -> None:
        self.owner: str | None = None

    def acquire(self, owner: str, build: Callable[[], Any]) -> Any:
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        current = SparkSession._instantiatedSession
        alive = current is not None and current._sc._jsc is not None
        if alive and owner == self.owner:
            return current
        if current is not None:
            current.stop()
        gateway = SparkContext._gateway
        if gateway is not None and owner != self.owner:  # a JVM of its own: another
            # classpath, other Java options
            gateway.shutdown()
            proc = getattr(gateway, "proc", None)
            if proc is not None:  # the JVM exits when its stdin closes
                proc.stdin.close()
                proc.wait(timeout=60)
            SparkContext._gateway = None
            SparkContext._jvm = None
        self.owner = owner
        return build()


@pytest.fixture(scope="session")
def spark_slot() -> SparkSlot:
    """The worker's Spark driver, handed from suite to suite (see ``SparkSlot``)."""
    return SparkSlot()
