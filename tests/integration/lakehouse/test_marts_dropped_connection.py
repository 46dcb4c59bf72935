"""A dbt build that loses its SQL-endpoint connection mid-query is retried, not failed.

The CI run of 2026-11-27 failed because the Thrift Server closed one dbt session's socket
(``TSocket read 0 bytes``) while every other node passed. Here a TCP relay in front of the real
Thrift Server cuts the connection that sends the ``not_null`` test of ``dim_entity_risk`` (dbt
tags every statement with its node id), once; ``dagster asset materialize`` of that mart must
end in SUCCESS after one step retry, with the test passing in the retry.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lakehouse.conftest import DagsterBuild, Lake, Streamed

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
TRIGGER = b"test.sentinel_lakehouse.not_null_dim_entity_risk_entity_key"


class CuttingRelay:
    """Relays 127.0.0.1:<port> to the SQL endpoint; the first connection whose client sends
    ``TRIGGER`` is closed on both sides before the statement reaches the server."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.cuts, self.connections = upstream, 0, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.connections += 1
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        tail = b""
        try:
            while chunk := src.recv(65536):
                if from_client:
                    window, tail = tail + chunk, (tail + chunk)[-len(TRIGGER):]
                    with self.lock:
                        cut = TRIGGER in window and self.cuts == 0
                        self.cuts += cut
                    if cut:
                        break
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def relay(thrift_endpoint: tuple[str, int]) -> Iterator[CuttingRelay]:
    r = CuttingRelay(thrift_endpoint)
    yield r
    r.close()


def test_a_dropped_connection_is_retried(relay: CuttingRelay, lake: Lake, streamed: Streamed,
                                         dagster_build: DagsterBuild,
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    from dagster import DagsterEventType, DagsterInstance

    # after dagster_build, on the same lake: dim_entity_risk is rebuilt from the same data
    home = tmp_path_factory.mktemp("dagster-retry-home")
    env = {**os.environ, "DAGSTER_HOME": str(home), "SENTINEL_WAREHOUSE": streamed.warehouse,
           "SENTINEL_LAKEHOUSE_SCHEMA_PREFIX": lake.prefix, "SENTINEL_THRIFT_PORT": str(relay.port),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "asset", "materialize",
         "-m", "orchestration.definitions", "--select", "gold/dim_entity_risk"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = proc.stdout[-3000:] + proc.stderr[-6000:]

    assert relay.cuts == 1, f"the relay never saw the test's statement\n{output}"
    assert proc.returncode == 0, output
    with DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
    types = [e.event_type for e in events]
    assert run.status.value == "SUCCESS"
    assert types.count(DagsterEventType.STEP_UP_FOR_RETRY) == 1, output
    assert DagsterEventType.STEP_FAILURE not in types
    checks = [e.event_specific_data for e in events
              if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
              and e.event_specific_data.check_name == "not_null_dim_entity_risk_entity_key"]
    # the cut attempt's evaluation failed (or never came), the retry's passed
    assert checks and checks[-1].passed
    assert "gold/dim_entity_risk" in {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION}
