"""How the watcher and the stream job word a failure: the reason first, never py4j's preamble."""

from __future__ import annotations

import pytest

from orchestration.streams.jobs import _death_notice
from orchestration.streams.reconcile import error_summary

pytestmark = pytest.mark.unit

PY4J = ("Py4JJavaError: An error occurred while calling o35.start.\n"
        ": com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input\n"
        "\tat com.fasterxml.jackson.core.base.ParserMinimalBase._reportInvalidEOF(x.java:643)")


def test_py4j_errors_are_summarised_by_their_java_exception():
    assert error_summary(PY4J) == (
        "com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input")


def test_plain_errors_keep_their_first_line_and_are_bounded():
    assert error_summary("\n  ValueError: bad value\nmore") == "ValueError: bad value"
    assert error_summary("x" * 500, limit=20) == "x" * 20
    assert error_summary("") == ""


def test_the_watchers_verdict_is_not_repeated_in_the_summary():
    verdict = "gave up after 3 failed attempts: " + PY4J.replace(
        "Py4JJavaError: ", "com.x.JsonEOFException: cut\nPy4JJavaError: ", 1)
    assert error_summary(verdict) == "com.x.JsonEOFException: cut"


def test_a_killed_stream_is_described_by_its_signal_and_last_log_line():
    error, summary = _death_notice(-9, "INFO batch=3 rows=100\nINFO batch=4 rows=100\n\n")
    assert summary == ("the stream process died (killed by SIGKILL); "
                       "last log line: INFO batch=4 rows=100")
    assert error.startswith(summary) and error.endswith("batch=4 rows=100\n\n")


def test_a_stream_exiting_non_zero_without_a_log_says_so():
    assert _death_notice(3, "") == ("the stream process died (exit code 3)",) * 2
