"""The writer lease on the real Postgres: exclusive, named, released when its holder dies."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from catalog.writer_lease import LeaseUnavailable, writer_lease

pytestmark = pytest.mark.integration

HOLD_FOREVER = """
import sys, time
from catalog.writer_lease import writer_lease
with writer_lease(sys.argv[1], owner="doomed driver"):
    print("held", flush=True)
    time.sleep(600)
"""


def table() -> str:
    return f"s3a://bucket/lease-{uuid.uuid4().hex[:8]}/events"


def test_second_writer_waits_then_gives_up_naming_the_holder(catalog_db):
    path = table()
    with writer_lease(path, owner="stream q-1"):
        started = time.monotonic()
        with pytest.raises(LeaseUnavailable) as info:
            with writer_lease(path + "/", owner="compaction", timeout=1.0, poll=0.2):
                pytest.fail("two writers held one table")
        assert time.monotonic() - started >= 1.0
        assert "stream q-1" in str(info.value)
        with writer_lease(table(), owner="other table", timeout=0):
            pass  # other tables are independent
    with writer_lease(path, owner="compaction", timeout=0):
        pass  # released on exit


def test_lease_is_released_when_its_holder_is_killed(catalog_db):
    path = table()
    proc = subprocess.Popen([sys.executable, "-c", HOLD_FOREVER, path], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LeaseUnavailable, match="doomed driver"):
            with writer_lease(path, timeout=0):
                pass
    finally:
        proc.kill()
        proc.wait()
    with writer_lease(path, owner="survivor", timeout=10):
        pass  # the dead driver's session ended, and with it the lock
