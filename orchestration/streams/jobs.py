"""Job ``stream_pipeline``: one pipeline's streaming query, run and watched by Dagster.

The op starts ``python -m streaming.job`` as a child (or, with ``SENTINEL_STREAM_SHARED_APP``,
has the shared stream host run the query: one Spark application for all pipelines), turns
each new micro-batch recorded in ``stream_runs`` into a log line and an observation of the
pipeline's ``bronze_events`` partition, and on termination (UI, API pause, the watcher) asks
the stream to stop after its current batch. A stream ending non-zero fails the run with its
own last error.
"""


import signal
import time

from dagster import (
    AssetObservation,
    Config,
    DagsterExecutionInterruptedError,
    Failure,
    MetadataValue,
    OpExecutionContext,
    in_process_executor,
    job,
    op,
)

from orchestration.lib.catalog import CatalogResource
from orchestration.lib.tags import KIND_TAG
from orchestration.streams import queries as q
from orchestration.streams.reconcile import error_summary
from orchestration.streams.stream_process import HostedStream, StreamProcess, stream_for

PIPELINE_TAG = "sentinel/pipeline_id"
SCHEMA_TAG = "sentinel/schema_version"
BATCH_FIELDS = ("last_batch_id", "last_batch_rows", "input_rows", "rows_per_second",
                "batch_duration_ms", "alerts", "quarantined", "kafka_lag")


class StreamConfig(Config):
    """Which pipeline to stream; the trigger defaults to ``SENTINEL_TRIGGER_INTERVAL_SECONDS``."""

    pipeline_id: int
    trigger_seconds: float | None = None
    poll_seconds: float = 3.0
    stop_timeout_seconds: float = 300.0


def _observe(context: OpExecutionContext, pipeline_id: int, row: dict) -> None:
    meta = {k: row[k] for k in BATCH_FIELDS if row.get(k) is not None}
    meta["status"] = row["status"]
    context.log.info("pipeline %s batch %s: %s", pipeline_id, row.get("last_batch_id"),
                     ", ".join(f"{k}={v}" for k, v in meta.items()))
    context.log_event(AssetObservation(
        asset_key="bronze_events", partition=str(pipeline_id),
        metadata={**meta, "stream_run_id": row["id"],
                  "last_batch_at": str(row.get("last_batch_at") or "")},
    ))


def _follow(context: OpExecutionContext, child: StreamProcess | HostedStream,
            catalog: CatalogResource,
            config: StreamConfig) -> int:
    """Poll the child and its ``stream_runs`` row until the child exits; returns its code."""
    seen: tuple = ()
    while True:
        rc = child.poll()
        row = catalog.call(q.progress, context.run_id)
        if row is not None:
            key = (row["status"], row["last_batch_id"])
            if key != seen:
                seen = key
                _observe(context, config.pipeline_id, row)
        if rc is not None:
            return rc
        time.sleep(config.poll_seconds)


def _death_notice(rc: int, tail: str) -> tuple[str, str]:
    """(error text, one-line summary) for a stream that exited without recording an error."""
    how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    summary = f"the stream process died ({how})" + (f"; last log line: {last}" if last else "")
    return (f"{summary}\n{tail}" if tail else summary), summary


@op(description="Run one pipeline's Spark Structured Streaming query until it is stopped.",
    tags={KIND_TAG: "stream"})
def run_stream(context: OpExecutionContext, config: StreamConfig,
               catalog: CatalogResource) -> None:
    child = stream_for(config.pipeline_id, context.run_id, config.trigger_seconds)
    pid = child.start()
    where = ("in the shared stream host" if isinstance(child, HostedStream)
             else "as streaming.job")
    context.log.info("started pipeline %s %s (pid %s), log %s", config.pipeline_id, where,
                     pid, child.log)
    try:
        rc = _follow(context, child, catalog, config)
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        context.log.info("run terminated: asking the stream to finish its batch and stop")
        rc, graceful = child.stop(config.stop_timeout_seconds)
        context.log.info("stream exited with %s (%s)", rc,
                         "graceful" if graceful else "killed after timeout")
        if not graceful:
            catalog.call(q.close_run, context.run_id, "stopped",
                         f"killed after {config.stop_timeout_seconds:.0f}s: no graceful stop")
        raise
    row = catalog.call(q.progress, context.run_id) or {}
    if rc == 0:
        context.log.info("stream stopped: %s", row.get("last_error") or row.get("status"))
        return
    if row.get("ended_at") is not None and row.get("last_error"):  # the job's own account
        error = row["last_error"]
        summary = error_summary(error)
    else:  # it died (SIGKILL, OOM, a crash at start) before it could record why
        error, summary = _death_notice(rc, child.tail())
        if catalog.call(q.close_run, context.run_id, "failed", error):
            context.log.warning("closed the stream_runs row the dead stream left open")
    raise Failure(
        description=f"streaming job for pipeline {config.pipeline_id} exited with {rc}: "
                    f"{summary}"[:2000],
        metadata={"exit_code": rc, "last_error": MetadataValue.text(error[-4000:]),
                  "log": MetadataValue.path(str(child.log))},
    )


@job(description="One pipeline's stream (launched, stopped and restarted by pipeline_watcher).",
     tags={KIND_TAG: "stream"}, executor_def=in_process_executor)
def stream_pipeline():
    run_stream()


def stream_run_config(pipeline_id: int) -> dict:
    """The run config that points ``stream_pipeline`` at one pipeline."""
    return {"ops": {"run_stream": {"config": {"pipeline_id": pipeline_id}}}}
