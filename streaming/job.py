"""``python -m streaming.job --pipeline-id N``: one pipeline's streaming query (DESIGN §6-§7).

Kafka topic → ``foreachBatch(process_batch)`` on a processing-time trigger, with the checkpoint
under ``<warehouse>/_checkpoints/pipeline_<id>``. A watcher thread polls the catalog every
trigger: when the pipeline is paused/stopped/deleted or its schema version changed (or on
SIGTERM/SIGINT) it lets the current batch finish, stops the query and the job exits 0. A query
failure (a sink down past its retries) exits 1; the restarted job replays the uncommitted batch.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from catalog.settings import get_settings
from streaming import progress
from streaming.batch import BatchContext, process_batch, table_frames
from streaming.pipeline import Paths, load_pipeline
from streaming.rules import RuleCache
from streaming.session import build_session
from streaming.sinks import delta
from streaming.sinks.redis_sink import RedisAlertSink
from streaming.watcher import StopController

log = logging.getLogger("streaming.job")


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline-id", type=int, required=True)
    ap.add_argument("--trigger-seconds", type=float, default=None)
    ap.add_argument("--max-offsets", type=int, default=None)
    ap.add_argument("--dagster-run-id", default=None)
    return ap.parse_args(argv)


def _ensure_tables(spark, ctx: BatchContext) -> None:
    frames = table_frames(spark, ctx)
    delta.ensure_table(frames["events"], ctx.paths.events, ["event_date"])
    delta.ensure_table(frames["quarantine"], ctx.paths.quarantine, ["quarantine_date"])
    delta.ensure_table(frames["alerts"], ctx.paths.alerts)


def run(pipeline_id: int, *, trigger_seconds: float | None = None,
        max_offsets: int | None = None, dagster_run_id: str | None = None) -> int:
    """Run the pipeline's query until it is stopped (0) or fails (1)."""
    settings = get_settings()
    pipeline = load_pipeline(pipeline_id)
    if pipeline.status != "active":
        log.info("pipeline %s is %s: nothing to run", pipeline_id, pipeline.status)
        return 0
    # 0 is a valid trigger (the next micro-batch starts as soon as one ends), not "unset".
    trigger = (settings.trigger_interval_seconds if trigger_seconds is None
               else trigger_seconds)
    spark = build_session(f"sentinel-{pipeline.slug}")
    paths = Paths(settings.warehouse_root, pipeline.slug)
    run_id = progress.start_run(pipeline.id, pipeline.schema_version,
                                dagster_run_id=dagster_run_id)
    try:
        return _run(spark, pipeline, paths, run_id, trigger, max_offsets or
                    settings.max_offsets_per_trigger)
    except BaseException as exc:
        progress.set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}", ended=True)
        raise


def _run(spark, pipeline, paths: Paths, run_id: int, trigger: float, max_offsets: int) -> int:
    settings = get_settings()
    redis_sink = RedisAlertSink.from_url(settings.redis_dsn,
                                         ttl_seconds=settings.redis_alert_ttl_seconds,
                                         stream_maxlen=settings.redis_stream_maxlen)
    ctx = BatchContext(pipeline, paths, query_id="", rules=RuleCache(pipeline.id),
                       redis=redis_sink, run_id=run_id)
    _ensure_tables(spark, ctx)
    control = StopController(pipeline, max(trigger, 1.0), run_id)  # polls at most 1/s

    def on_batch(df, batch_id: int) -> None:
        with control.batch():
            ctx.query_id = control.query_id
            process_batch(df, batch_id, ctx=ctx)

    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .option("subscribe", pipeline.topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", str(max_offsets))
        .option("failOnDataLoss", "false")
        .load()
    )
    query = (
        source.writeStream.queryName(pipeline.slug)
        .foreachBatch(on_batch)
        .option("checkpointLocation", paths.checkpoint)
        .trigger(processingTime=f"{trigger} seconds")
        .start()
    )
    control.attach(query)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: control.request_stop("signal"))
    progress.set_status(run_id, "running", query_id=str(query.id))
    log.info("pipeline=%s topic=%s query=%s run=%s trigger=%ss checkpoint=%s",
             pipeline.id, pipeline.topic, query.id, run_id, trigger, paths.checkpoint)
    control.start()
    try:
        while not query.awaitTermination(1):
            pass
    except Exception as exc:
        if not control.stopping:
            log.error("query failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
            progress.set_status(run_id, "failed", error=str(exc), ended=True)
            return 1
        log.info("query ended by the stop request: %s", str(exc).splitlines()[0])
    progress.set_status(run_id, "stopped", ended=True,
                        error=None if control.reason == "signal" else control.reason)
    log.info("pipeline=%s stopped (%s)", pipeline.id, control.reason)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = _args(argv)
    return run(args.pipeline_id, trigger_seconds=args.trigger_seconds,
               max_offsets=args.max_offsets, dagster_run_id=args.dagster_run_id)


if __name__ == "__main__":
    sys.exit(main())
