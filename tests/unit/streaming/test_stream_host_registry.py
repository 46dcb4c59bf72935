"""The stream host's bookkeeping: one live query per pipeline, orphans stopped, idle exit."""

from __future__ import annotations

import subprocess
import time

import pytest

from streaming import host as host_mod
from streaming.host import HostClosing, StreamHost
from streaming.processes import owner_alive

pytestmark = pytest.mark.unit


class FakeQuery:
    def __init__(self) -> None:
        self.stops: list[str] = []

    def request_stop(self, reason: str) -> None:
        self.stops.append(reason)


@pytest.fixture()
def host(monkeypatch) -> StreamHost:
    """A host whose queries do not start Spark: each stays ``running`` with a fake query."""

    def fake_run(self, hosted, trigger_seconds, dagster_run_id) -> None:
        hosted.query = FakeQuery()
        hosted.state = "running"

    monkeypatch.setattr(StreamHost, "_run", fake_run)
    h = StreamHost(spark=None, idle_seconds=0.2)
    return h


def _wait_running(h: StreamHost, key: str) -> None:
    deadline = time.monotonic() + 5
    while h.queries[key].state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_one_live_query_per_pipeline(host):
    host.start("a", 1, trigger_seconds=None, dagster_run_id="a", owner_pid=None)
    _wait_running(host, "a")
    with pytest.raises(ValueError, match="pipeline 1 already runs here"):
        host.start("b", 1, trigger_seconds=None, dagster_run_id="b", owner_pid=None)
    with pytest.raises(ValueError, match="key a was already used"):
        host.start("a", 2, trigger_seconds=None, dagster_run_id="a", owner_pid=None)
    host.queries["a"].state, host.queries["a"].code = "stopped", 0
    host.start("c", 1, trigger_seconds=None, dagster_run_id="c", owner_pid=None)  # ended: ok


def test_orphaned_query_is_stopped_and_owned_one_kept(host):
    host.start("orphan", 1, trigger_seconds=None, dagster_run_id="o", owner_pid=dead_pid())
    host.start("owned", 2, trigger_seconds=None, dagster_run_id="w", owner_pid=None)
    _wait_running(host, "orphan")
    _wait_running(host, "owned")
    assert host.reap() is False
    assert host.queries["orphan"].query.stops == ["signal"]
    assert host.queries["owned"].query.stops == []
    assert host.reap() is False  # asked once, not again
    assert host.queries["orphan"].query.stops == ["signal"]


def test_stop_before_the_query_exists_is_kept_for_it(host, monkeypatch):
    monkeypatch.setattr(StreamHost, "_run", lambda self, hosted, t, d: None)  # still starting
    host.start("k", 3, trigger_seconds=None, dagster_run_id="k", owner_pid=None)
    host.stop("k", "signal")
    assert host.queries["k"].stop_reason == "signal"


def test_idle_host_closes_and_refuses_new_queries(host):
    host.start("a", 1, trigger_seconds=None, dagster_run_id="a", owner_pid=None)
    _wait_running(host, "a")
    time.sleep(0.3)
    assert host.reap() is False, "a live query keeps the host"
    host.queries["a"].state = "stopped"
    assert host.reap() is False, "idle only after idle_seconds without a query"
    time.sleep(0.3)
    assert host.reap() is True
    with pytest.raises(HostClosing):
        host.start("b", 2, trigger_seconds=None, dagster_run_id="b", owner_pid=None)


def test_owner_alive():
    assert owner_alive(None) and owner_alive(host_mod.os.getpid())
    assert not owner_alive(dead_pid())
