"""``python -m streaming.job --pipeline-id N [--pipeline-id M ...]``: pipelines' stream processes.

Each pipeline runs three parts in this process (one Spark application for all its pipelines):

- **detect**: a real-time-mode query (``streaming.detect``) that turns each event into its
  alerts on the pipeline's alerts topic within milliseconds; a rule change (announced by the
  API, and the catalog's ``rules_version`` polled as a fallback) restarts it in this JVM on the
  same checkpoint (``streaming.rule_watcher``);
- **fan-out**: a consumer of the alerts topic writing Postgres and Redis (``streaming.fanout``);
- **velocity**: when the pipeline has velocity rules, a stateful micro-batch query
  (``streaming.velocity``) writing their alerts to the same alerts topic; a change of velocity
  rules restarts it alone on its checkpoint (its state is per key field, not per rule);
- **archive**: a micro-batch query (``foreachBatch(archive.process_batch)``, trigger
  ``SENTINEL_TRIGGER_INTERVAL_SECONDS``) writing bronze, quarantine and silver alerts.

Checkpoints live under ``<warehouse>/_checkpoints/pipeline_<id>/{detect,archive,velocity-jvm2}``
(``velocity`` with the Python velocity steps); each
pipeline has its own ``stream_runs`` row. A watcher thread per pipeline polls the catalog: when
the pipeline is paused/stopped/deleted or its schema version changed (or on SIGTERM/SIGINT) it
stops detect, lets the fan-out write what detect emitted, lets the archive finish its batch and
stops it. The job exits when every pipeline has ended: 0 if all stopped on request, 1 if a part
failed (a sink down past its retries); the restarted job resumes from the checkpoints and the
committed fan-out offsets, and every sink ignores what it already holds.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from catalog.settings import get_settings
from streaming import progress
from streaming.archive import BatchContext, ensure_tables, process_batch
from streaming.detect import Detector, alerts_topic, analysable, recent_events
from streaming.fanout import Fanout
from streaming.kafka_io import stream_records
from streaming.pipeline import Paths, Pipeline, load_pipeline
from streaming.rule_watcher import RuleWatcher
from streaming.session import build_session, local_slots
from streaming.sinks.redis_sink import RedisAlertSink
from streaming.topics import end_offsets, ensure_topic, partitions
from streaming.velocity import VelocityQuery
from streaming.watcher import StopController

log = logging.getLogger("streaming.job")
DETECT_RESTARTS = 5  # in-process restarts of a detect query that died, before the job fails


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline-id", type=int, required=True, action="append",
                    help="repeat to run several pipelines in one Spark application")
    ap.add_argument("--trigger-seconds", type=float, default=None)
    ap.add_argument("--max-offsets", type=int, default=None,
                    help="records per archive and velocity micro-batch (default: the settings)")
    ap.add_argument("--dagster-run-id", default=None)
    return ap.parse_args(argv)


def detect_slots(pipeline: Pipeline) -> int:
    """Task slots the pipeline's detect query holds: one per partition of its topic."""
    return partitions(get_settings().kafka_bootstrap_servers, pipeline.topic)


class PipelineQuery:
    """One pipeline's detect, fan-out and archive in a shared Spark application, and its
    ``stream_runs`` row.

    ``start`` creates the Delta tables and the alerts topic if needed and starts the three
    parts; ``wait`` blocks until they ended and records how (0 stopped on request, 1 failed).
    ``request_stop`` stops detect, drains the fan-out and lets the archive finish its batch.
    """

    def __init__(self, spark, pipeline: Pipeline, *, trigger: float, max_offsets: int,
                 velocity_max_offsets: int | None = None,
                 dagster_run_id: str | None = None) -> None:
        self.spark = spark
        self.pipeline = pipeline
        self.trigger = trigger
        self.max_offsets = max_offsets
        self.velocity_max_offsets = (velocity_max_offsets
                                     or get_settings().velocity_max_offsets_per_trigger)
        self.paths = Paths(get_settings().warehouse_root, pipeline.slug)
        self.run_id = progress.start_run(pipeline.id, pipeline.schema_version,
                                         dagster_run_id=dagster_run_id)
        # The catalog is polled every 1-2 s for a pause, a stop or a schema change.
        self.control = StopController(pipeline, min(max(trigger, 1.0), 2.0), self.run_id)
        self.query = None
        self.detector: Detector | None = None
        self.fanout: Fanout | None = None
        self.rules: RuleWatcher | None = None
        self.velocity: VelocityQuery | None = None
        self._detect_failures = 0

    def start(self) -> None:
        try:
            self._start()
        except BaseException as exc:
            self._failed(exc)
            self._stop_parts()
            raise

    def _failed(self, exc: BaseException | str) -> None:
        error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        progress.set_status(self.run_id, "failed", error=error, ended=True)

    def _start(self) -> None:
        settings = get_settings()
        pipeline, control = self.pipeline, self.control
        topic_out = alerts_topic(settings.alerts_topic_prefix, pipeline.topic)
        ensure_topic(settings.kafka_bootstrap_servers, topic_out,
                     partitions=partitions(settings.kafka_bootstrap_servers, pipeline.topic),
                     replication=settings.kafka_replication_factor)
        bootstrap = settings.kafka_bootstrap_servers
        ctx = BatchContext(pipeline, self.paths, topic_out, run_id=self.run_id,
                           small_batch_rows=settings.archive_small_batch_rows,
                           topic_end=lambda: sum(end_offsets(bootstrap, pipeline.topic).values()))
        ensure_tables(self.spark, ctx)

        redis_sink = RedisAlertSink.from_url(settings.redis_dsn,
                                             ttl_seconds=settings.redis_alert_ttl_seconds,
                                             stream_maxlen=settings.redis_stream_maxlen)
        self.fanout = Fanout(pipeline.id, topic_out, bootstrap=settings.kafka_bootstrap_servers,
                             redis=redis_sink)
        self.fanout.start()

        self.detector = Detector(self.spark, pipeline, self.paths,
                                 bootstrap=settings.kafka_bootstrap_servers, topic_out=topic_out,
                                 interval=f"{settings.detect_checkpoint_seconds:g} seconds")
        self.velocity = VelocityQuery(
            self.spark, pipeline, self.paths, bootstrap=settings.kafka_bootstrap_servers,
            topic_out=topic_out, trigger=settings.velocity_trigger_seconds,
            max_offsets=self.velocity_max_offsets,
            lateness_seconds=settings.velocity_allowed_lateness_seconds,
            engine=settings.velocity_engine)
        self.rules = RuleWatcher(pipeline, self.detector, analysable(self.spark, pipeline),
                                 self.run_id, settings.rule_poll_seconds, self.velocity)
        self.detector.start(self.rules.current())
        self.velocity.start(self.rules.velocity_rules())
        progress.set_rules_version(self.run_id, self.rules.cache.version)
        self.rules.start()

        def on_batch(df, batch_id: int) -> None:
            with control.batch():
                ctx.query_id = control.query_id
                process_batch(df, batch_id, ctx=ctx)

        source = stream_records(self.spark, bootstrap=settings.kafka_bootstrap_servers,
                                topics=[pipeline.topic, topic_out], max_offsets=self.max_offsets)
        self.query = (
            source.writeStream.queryName(f"{pipeline.slug}_archive")
            .foreachBatch(on_batch)
            .option("checkpointLocation", f"{self.paths.checkpoint}/archive")
            .trigger(processingTime=f"{self.trigger} seconds")
            .start()
        )
        control.attach(self.query, before_stop=self._stop_hot_path)
        progress.set_status(self.run_id, "running", query_id=str(self.query.id))
        log.info("pipeline=%s topic=%s alerts=%s archive query=%s run=%s trigger=%ss "
                 "checkpoints=%s/{detect,archive}", pipeline.id, pipeline.topic, topic_out,
                 self.query.id, self.run_id, self.trigger, self.paths.checkpoint)
        control.start()

    def _stop_hot_path(self) -> None:
        """Detect first, then the fan-out once it wrote what detect emitted."""
        if self.rules is not None:
            self.rules.stop()
        if self.detector is not None:
            self.detector.stop()
        if self.velocity is not None:
            self.velocity.stop()
        if self.fanout is not None:
            if self.fanout.alive() and not self.fanout.drain(timeout=30):
                log.warning("pipeline=%s fan-out did not drain in 30 s (it resumes from its "
                            "committed offsets)", self.pipeline.id)
            self.fanout.stop()

    def _stop_parts(self) -> None:
        self._stop_hot_path()
        if self.query is not None and self.query.isActive:
            self.query.stop()

    def request_stop(self, reason: str) -> None:
        self.control.request_stop(reason)

    def _hot_path_failure(self) -> str | None:
        if self.detector is not None and (error := self.detector.failure()):
            return f"detect query failed: {error}"
        if self.velocity is not None and (error := self.velocity.failure()):
            return f"velocity query failed: {error}"
        if self.fanout is not None and self.fanout.error is not None:
            return f"alert fan-out failed: {type(self.fanout.error).__name__}: " \
                   f"{self.fanout.error}"
        return None

    def _isolate_failing_rules(self) -> bool:
        """After the detect query died: mark the rules that fail at run time on the latest
        events as errors and restart detect without them (False when none is to blame)."""
        assert self.detector is not None and self.rules is not None
        settings = get_settings()
        before = list(self.detector.rules)
        try:
            sample = recent_events(self.spark, self.pipeline,
                                   bootstrap=settings.kafka_bootstrap_servers).persist()
            sample.count()  # read once without any rule: a failure here is no rule's fault
        except Exception as exc:  # e.g. Kafka itself is down
            log.warning("pipeline=%s could not look for a failing rule: %s", self.pipeline.id,
                        str(exc).splitlines()[0] if str(exc) else exc)
            return False
        try:
            remaining = self.rules.cache.drop_failing(sample)
        finally:
            sample.unpersist()
        if len(remaining) == len(before):
            return False
        self.detector.restart(remaining)
        progress.set_rules_version(self.run_id, self.rules.cache.version)
        return True

    def _restart_detect(self, error: str) -> bool:
        """Restart a detect query that died for no rule's fault (a broker restart, say), a
        few times with a growing pause; False once those are spent (the job then fails and
        its supervisor restarts it)."""
        assert self.detector is not None
        if self._detect_failures >= DETECT_RESTARTS:
            return False
        self._detect_failures += 1
        pause = 2.0 ** self._detect_failures
        log.warning("pipeline=%s detect query died (%s); restart %d/%d in %.0f s",
                    self.pipeline.id, error.splitlines()[0][:300], self._detect_failures,
                    DETECT_RESTARTS, pause)
        time.sleep(pause)
        try:
            self.detector.restart(list(self.detector.rules))
        except Exception as exc:
            log.warning("pipeline=%s detect restart failed: %s", self.pipeline.id, exc)
        return True

    def wait(self) -> int:
        """Block until the pipeline's parts ended; record and return 0 (stopped) or 1 (failed)."""
        assert self.query is not None, "start() first"
        control = self.control
        try:
            while not self.query.awaitTermination(1):
                if control.stopping or not (error := self._hot_path_failure()):
                    continue
                if error.startswith("detect") and (self._isolate_failing_rules()
                                                   or self._restart_detect(error)):
                    continue
                log.error("pipeline=%s %s", self.pipeline.id, error.splitlines()[0])
                self._stop_parts()
                self._failed(error)
                return 1
        except Exception as exc:
            if not control.stopping:
                log.error("pipeline=%s archive query failed: %s", self.pipeline.id,
                          str(exc).splitlines()[0] if str(exc) else exc)
                self._stop_parts()
                progress.set_status(self.run_id, "failed", error=str(exc), ended=True)
                return 1
            log.info("pipeline=%s query ended by the stop request: %s", self.pipeline.id,
                     str(exc).splitlines()[0])
        except BaseException as exc:
            self._failed(exc)
            raise
        self._stop_parts()
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
        # Twice the detect slots: a restarted detect query's tasks can start while the
        # interrupted ones are still winding down.
        slots = 2 * sum(detect_slots(p) for p in pipelines) + settings.archive_task_slots
        spark = build_session(name, master=local_slots(settings.spark_master, slots))
        for pipeline in pipelines:
            queries.append(PipelineQuery(spark, pipeline, trigger=trigger, max_offsets=offsets,
                                         velocity_max_offsets=max_offsets,
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
