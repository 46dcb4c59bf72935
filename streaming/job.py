"""``python -m streaming.job --pipeline-id N [--pipeline-id M ...]``: pipelines' streaming queries.

Each pipeline is one query: Kafka topic → ``foreachBatch(process_batch)`` on a processing-time
trigger, with the checkpoint under ``<warehouse>/_checkpoints/pipeline_<id>`` and its own
``stream_runs`` row (DESIGN §6-§7). Several ``--pipeline-id`` run as several queries in ONE Spark
application (one JVM for all; what lets ten pipelines share a small machine); one is what the
Dagster ``stream_pipeline`` run starts. A watcher thread per query polls the catalog every
trigger: when its pipeline is paused/stopped/deleted or its schema version changed (or on
SIGTERM/SIGINT, for every query) it lets the current batch finish and stops that query; the
others keep running. The job exits when every query has ended: 0 if all stopped on request,
1 if one failed (a sink down past its retries); the restarted job replays uncommitted batches.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from catalog.settings import get_settings
from streaming import progress
from streaming.batch import BatchContext, process_batch, table_frames
from streaming.pipeline import Paths, Pipeline, load_pipeline
from streaming.rules import RuleCache
from streaming.session import build_session
from streaming.sinks import delta
from streaming.sinks.redis_sink import RedisAlertSink
from streaming.watcher import StopController

log = logging.getLogger("streaming.job")


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline-id", type=int, required=True, action="append",
                    help="repeat to run several pipelines in one Spark application")
    ap.add_argument("--trigger-seconds", type=float, default=None)
    ap.add_argument("--max-offsets", type=int, default=None)
    ap.add_argument("--dagster-run-id", default=None)
    return ap.parse_args(argv)


def _ensure_tables(spark, ctx: BatchContext) -> None:
    frames = table_frames(spark, ctx)
    delta.ensure_table(frames["events"], ctx.paths.events, ["event_date"])
    delta.ensure_table(frames["quarantine"], ctx.paths.quarantine, ["quarantine_date"])
    delta.ensure_table(frames["alerts"], ctx.paths.alerts)


class PipelineQuery:
    """One pipeline's streaming query in a shared Spark application, and its ``stream_runs`` row.

    ``start`` creates the Delta tables if needed and starts the query; ``wait`` blocks until it
    ended and records how (0 stopped on request, 1 failed). ``request_stop`` finishes the
    running batch first.
    """

    def __init__(self, spark, pipeline: Pipeline, *, trigger: float, max_offsets: int,
                 dagster_run_id: str | None = None) -> None:
        self.spark = spark
        self.pipeline = pipeline
        self.trigger = trigger
        self.max_offsets = max_offsets
        self.paths = Paths(get_settings().warehouse_root, pipeline.slug)
        self.run_id = progress.start_run(pipeline.id, pipeline.schema_version,
                                         dagster_run_id=dagster_run_id)
        self.control = StopController(pipeline, max(trigger, 1.0), self.run_id)  # ≤ 1 poll/s
        self.query = None

    def start(self) -> None:
        try:
            self._start()
        except BaseException as exc:
            self._failed(exc)
            raise

    def _failed(self, exc: BaseException) -> None:
        progress.set_status(self.run_id, "failed", error=f"{type(exc).__name__}: {exc}",
                            ended=True)

    def _start(self) -> None:
        settings = get_settings()
        pipeline, control = self.pipeline, self.control
        redis_sink = RedisAlertSink.from_url(settings.redis_dsn,
                                             ttl_seconds=settings.redis_alert_ttl_seconds,
                                             stream_maxlen=settings.redis_stream_maxlen)
        ctx = BatchContext(pipeline, self.paths, query_id="", rules=RuleCache(pipeline.id),
                           redis=redis_sink, run_id=self.run_id)
        _ensure_tables(self.spark, ctx)

        def on_batch(df, batch_id: int) -> None:
            with control.batch():
                ctx.query_id = control.query_id
                process_batch(df, batch_id, ctx=ctx)

        source = (
            self.spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
            .option("subscribe", pipeline.topic)
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", str(self.max_offsets))
            .option("failOnDataLoss", "false")
            .load()
        )
        self.query = (
            source.writeStream.queryName(pipeline.slug)
            .foreachBatch(on_batch)
            .option("checkpointLocation", self.paths.checkpoint)
            .trigger(processingTime=f"{self.trigger} seconds")
            .start()
        )
        control.attach(self.query)
        progress.set_status(self.run_id, "running", query_id=str(self.query.id))
        log.info("pipeline=%s topic=%s query=%s run=%s trigger=%ss checkpoint=%s",
                 pipeline.id, pipeline.topic, self.query.id, self.run_id, self.trigger,
                 self.paths.checkpoint)
        control.start()

    def request_stop(self, reason: str) -> None:
        self.control.request_stop(reason)

    def wait(self) -> int:
        """Block until the query ended; record and return 0 (stopped) or 1 (failed)."""
        assert self.query is not None, "start() first"
        control = self.control
        try:
            while not self.query.awaitTermination(1):
                pass
        except Exception as exc:
            if not control.stopping:
                log.error("pipeline=%s query failed: %s", self.pipeline.id,
                          str(exc).splitlines()[0] if str(exc) else exc)
                progress.set_status(self.run_id, "failed", error=str(exc), ended=True)
                return 1
            log.info("pipeline=%s query ended by the stop request: %s", self.pipeline.id,
                     str(exc).splitlines()[0])
        except BaseException as exc:
            self._failed(exc)
            raise
        progress.set_status(self.run_id, "stopped", ended=True,
                            error=None if control.reason == "signal" else control.reason)
        log.info("pipeline=%s stopped (%s)", self.pipeline.id, control.reason)
        return 0


def run(pipeline_ids: int | list[int], *, trigger_seconds: float | None = None,
        max_offsets: int | None = None, dagster_run_id: str | None = None) -> int:
    """Run the pipelines' queries until every one is stopped (0) or one failed (1)."""
    settings = get_settings()
    ids = [pipeline_ids] if isinstance(pipeline_ids, int) else list(dict.fromkeys(pipeline_ids))
    pipelines = []
    for pid in ids:
        pipeline = load_pipeline(pid)
        if pipeline.status != "active":
            log.info("pipeline %s is %s: nothing to run", pid, pipeline.status)
        else:
            pipelines.append(pipeline)
    if not pipelines:
        return 0
    # 0 is a valid trigger (the next micro-batch starts as soon as one ends), not "unset".
    trigger = (settings.trigger_interval_seconds if trigger_seconds is None
               else trigger_seconds)
    offsets = max_offsets or settings.max_offsets_per_trigger
    name = (f"sentinel-{pipelines[0].slug}" if len(pipelines) == 1
            else f"sentinel-streams-{len(pipelines)}")
    queries: list[PipelineQuery] = []
    try:
        spark = build_session(name)
        for pipeline in pipelines:
            queries.append(PipelineQuery(spark, pipeline, trigger=trigger, max_offsets=offsets,
                                         dagster_run_id=dagster_run_id))
            queries[-1].start()
    except BaseException:
        for q in queries:  # the failed one recorded why; the others end cleanly
            if q.query is not None:
                q.request_stop("start-up of another pipeline of this job failed")
                q.wait()
        raise
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: [q.request_stop("signal") for q in queries])
    if len(queries) == 1:
        return queries[0].wait()
    codes: dict[int, int] = {}

    def wait_one(q: PipelineQuery) -> None:
        codes[q.pipeline.id] = q.wait()

    threads = [threading.Thread(target=wait_one, args=(q,), name=f"wait-{q.pipeline.slug}")
               for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(1)
    failed = sorted(pid for pid, rc in codes.items() if rc)
    if failed or len(codes) < len(queries):
        log.error("pipelines %s failed", failed or "?")
        return 1
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
