"""``dbt build`` with a retry of the step when it only lost its SQL-endpoint connection.

A build whose only errors are a dropped connection to the SQL endpoint (the Thrift Server
closed one session's socket: ``TSocket read 0 bytes``, a reset, a refused connect) is retried
as a whole step, up to ``TRANSIENT_RETRIES`` times after ``TRANSIENT_RETRY_WAIT`` seconds
(Dagster ``RetryRequested``); a failing data test or a SQL error fails the run at once.
"""

import json
import re
from collections.abc import Iterable

from dagster import AssetExecutionContext, RetryRequested
from dagster_dbt import DbtCliResource

TRANSIENT_RETRIES = 2

TRANSIENT_RETRY_WAIT = 20  # seconds

# what dbt-spark reports when the SQL endpoint dropped or refused the connection of a node
TRANSIENT_ERROR = re.compile(
    r"TSocket read 0 bytes|TTransportException|Connection reset|Broken pipe|Connection refused"
    r"|Could not connect|Connection aborted|EOF occurred", re.IGNORECASE)


def _node_log_text(log_lines: Iterable[str], nodes: set[str]) -> dict[str, str]:
    """What dbt's JSON debug log (``dbt.log``) says of each of ``nodes``: adapter messages and
    stack traces, which keep the cause a node's one-line result message may have lost."""
    text: dict[str, list[str]] = {n: [] for n in nodes}
    for line in log_lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            continue
        node = (data.get("node_info") or {}).get("unique_id") or data.get("unique_id")
        if node in text:
            text[node] += [str(data.get(k)) for k in ("exc_info", "base_msg", "exc") if data.get(k)]
    return {n: "\n".join(t) for n, t in text.items()}


def transient_failure(run_results: dict, log_lines: Iterable[str] = ()) -> list[str]:
    """The nodes of a failed ``dbt build`` (its ``run_results.json`` and ``dbt.log`` lines) when
    every one of them errored on a dropped SQL-endpoint connection, else ``[]`` (a failing
    test, a SQL error, or no error at all: nothing a retry would fix)."""
    failed = [r for r in run_results.get("results", []) if r.get("status") in ("error", "fail")]
    if not failed or any(r.get("status") != "error" for r in failed):
        return []
    ids = [r.get("unique_id", "?") for r in failed]
    logged = _node_log_text(log_lines, set(ids))
    if all(TRANSIENT_ERROR.search(f"{r.get('message') or ''}\n{logged.get(n, '')}")
           for r, n in zip(failed, ids, strict=True)):
        return ids
    return []


def dbt_build(context: AssetExecutionContext, dbt: DbtCliResource, args: list[str]):
    """``dbt build`` with the run's events streamed; a build that failed only on dropped
    SQL-endpoint connections asks Dagster for a retry of the step."""
    invocation = dbt.cli(args, context=context, raise_on_error=False)
    yield from invocation.stream()
    error = invocation.get_error()
    if error is None:
        return
    try:
        log = invocation.target_path / "dbt.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        nodes = transient_failure(invocation.get_artifact("run_results.json"), lines)
    except (OSError, ValueError):  # no run_results.json: dbt died before running a node
        nodes = []
    if nodes:
        context.log.warning("dbt build lost its SQL-endpoint connection in %s; retrying the step "
                            "in %ss (attempt %s of %s)", ", ".join(nodes), TRANSIENT_RETRY_WAIT,
                            context.retry_number + 1, TRANSIENT_RETRIES)
        raise RetryRequested(max_retries=TRANSIENT_RETRIES,
                             seconds_to_wait=TRANSIENT_RETRY_WAIT) from error
    raise error
