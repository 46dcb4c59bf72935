"""A rule change is announced to its pipeline's listeners at commit, and only then."""

from __future__ import annotations

import threading
import time

import pytest

from catalog.db import get_engine
from catalog.rule_changes import RuleChangeListener, notify_rules_changed

pytestmark = pytest.mark.integration


def _announce(pipeline_id: int, *, commit: bool = True) -> None:
    with get_engine().connect() as conn:
        notify_rules_changed(conn, pipeline_id)
        if commit:
            conn.commit()
        else:
            conn.rollback()


def test_a_committed_change_wakes_the_pipelines_listener_at_once(catalog_db):
    listener = RuleChangeListener(910_001)
    try:
        assert listener.wait(0.05) is False  # connects and listens; nothing announced yet
        timer = threading.Timer(0.3, _announce, args=(910_001,))
        started = time.monotonic()
        timer.start()
        assert listener.wait(10.0) is True
        waited = time.monotonic() - started
        assert waited < 5.0, waited  # woken by the announcement, not by the timeout
    finally:
        listener.close()


def test_other_pipelines_and_rolled_back_changes_do_not_wake_it(catalog_db):
    listener = RuleChangeListener(910_002)
    try:
        assert listener.wait(0.05) is False
        _announce(910_003)  # another pipeline
        _announce(910_002, commit=False)  # never committed: never delivered
        assert listener.wait(0.5) is False
        _announce(910_002)
        assert listener.wait(5.0) is True
    finally:
        listener.close()


def test_a_lost_connection_is_reopened(catalog_db):
    listener = RuleChangeListener(910_004)
    try:
        assert listener.wait(0.05) is False
        backend = listener._raw.info.backend_pid
        with get_engine().connect() as conn:
            conn.exec_driver_sql(f"select pg_terminate_backend({int(backend)})")
        # The broken connection is noticed and dropped (no exception reaches the caller) ...
        deadline = time.monotonic() + 10
        while listener._raw is not None and time.monotonic() < deadline:
            listener.wait(0.2)
        assert listener._raw is None
        # ... and the next wait listens again.
        assert listener.wait(0.05) is False
        _announce(910_004)
        assert listener.wait(5.0) is True
    finally:
        listener.close()
