"""Which failed ``dbt build`` runs the dbt assets retry: only those whose every error is a
dropped SQL-endpoint connection."""

from __future__ import annotations

import json

import pytest

from orchestration.dbt.retry import transient_failure

pytestmark = pytest.mark.unit


def result(uid: str, status: str, message: str | None = None) -> dict:
    return {"unique_id": uid, "status": status, "message": message}


DROPPED = "TSocket read 0 bytes"  # what the CI run of 2026-11-27 failed on


def test_a_build_that_lost_one_connection_is_transient() -> None:
    run = {"results": [result("model.a", "success", "OK"),
                       result("test.not_null_x", "error", DROPPED),
                       result("test.unique_x", "pass")]}
    assert transient_failure(run) == ["test.not_null_x"]


@pytest.mark.parametrize("message", [
    "Connection lost while polling query status after 2 attempts. Original error: "
    "TTransportException: TSocket read 0 bytes",
    "failed to connect: ConnectionRefusedError: [Errno 111] Connection refused",
    "[Errno 104] Connection reset by peer",
    "[Errno 32] Broken pipe",
])
def test_dropped_or_refused_connections_are_transient(message: str) -> None:
    run = {"results": [result("model.a", "error", message), result("model.b", "skipped")]}
    assert transient_failure(run) == ["model.a"]


def log_line(node: str, **data: str) -> str:
    """One line of dbt's JSON debug log about ``node``."""
    return json.dumps({"data": {"node_info": {"unique_id": node}, **data},
                       "info": {"level": "debug"}})


TRACE = ("Traceback (most recent call last): ...\nthrift.transport.TTransport."
         "TTransportException: TSocket read 0 bytes\n... BrokenPipeError: [Errno 32] Broken pipe"
         "\nthrift.transport.TTransport.TTransportException: unexpected exception")


def test_the_cause_is_read_from_the_debug_log_when_the_result_lost_it() -> None:
    # dbt-spark's failed close of the dead session replaces the message with the last error
    run = {"results": [result("test.a", "error", "unexpected exception"),
                       result("test.b", "pass")]}
    log = ["not json", json.dumps({"info": {"msg": "no data"}}),
           log_line("test.b", base_msg="select 1"),
           log_line("test.a", exc_info=TRACE)]
    assert transient_failure(run, log) == ["test.a"]
    assert transient_failure(run, [log_line("test.b", exc_info=TRACE)]) == []  # another node's
    assert transient_failure(run) == []


def test_a_failing_data_test_is_not_retried() -> None:
    run = {"results": [result("test.a", "error", DROPPED),
                       result("test.unique_x", "fail", "Got 3 results, configured to fail")]}
    assert transient_failure(run) == []


def test_a_sql_error_is_not_retried() -> None:
    message = "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column `amt` cannot be resolved"
    run = {"results": [result("model.a", "error", message)]}
    assert transient_failure(run) == []


def test_no_failure_or_no_results_is_not_transient() -> None:
    assert transient_failure({"results": [result("model.a", "success", "OK")]}) == []
    assert transient_failure({}) == []
    assert transient_failure({"results": [result("model.a", "error", None)]}) == []
