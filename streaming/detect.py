"""The hot detection path: Kafka → parse → every active rule in one projection → alerts topic.

A Structured Streaming query in Spark's real-time mode (``trigger(realTime=…)``): one
long-running task per Kafka partition evaluates each record as it arrives, so an alert leaves
milliseconds after its event. The mode is stateless (no shuffle, no aggregation, no Python
UDF) and its Kafka sink is at-least-once: every consumer of the alerts topic is idempotent on
``alert_id``. Invalid records never alert (they only go to quarantine, on the lake path).

The rules are part of the query plan, so a rule change stops the query and starts it again
with the new projection on the same checkpoint (``Detector.reload``): nothing is skipped, and
the records of the interrupted real-time batch are evaluated again (same alert ids). A rule
that joins applies to every record that reached Kafka after its save: the restarted query
judges it on what it reads, and a batch read (``gap_records``) on the records between the save
and the restart that the query will not read again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from streaming.alerts import alert_message
from streaming.kafka_io import read_records, stream_records, write_records
from streaming.parse import empty_kafka_frame, parse_kafka, valid_events
from streaming.pipeline import Paths, Pipeline
from streaming.rules import Rule, evaluate
from streaming.topics import end_offsets, offsets_since

log = logging.getLogger(__name__)

# Kafka source options the real-time mode refuses (RealTimeModeAllowlist and the Kafka source).
MAX_TOPIC = 249
REJECTED_OPTIONS = ("maxOffsetsPerTrigger", "minOffsetsPerTrigger", "maxTriggerDelay",
                    "minPartitions")


def alerts_topic(prefix: str, events_topic: str) -> str:
    """The Kafka topic a pipeline's alerts travel on (keyed by event id): the prefix + the
    events topic's name (unique like it), or + its hash when that would pass Kafka's 249."""
    name = f"{prefix}{events_topic}"
    if len(name) <= MAX_TOPIC:
        return name
    return f"{prefix}{hashlib.sha256(events_topic.encode()).hexdigest()[:32]}"


def alert_records(kafka_df: DataFrame, pipeline: Pipeline, active: list[Rule]) -> DataFrame:
    """``(key, value)`` rows for the Kafka sink: one per (valid event, matching rule).

    ``key`` is the event id, ``value`` the alert as JSON (``alerts.alert_message``).
    """
    return alerts_of(valid_records(kafka_df, pipeline), pipeline, active)


def valid_records(kafka_df: DataFrame, pipeline: Pipeline) -> DataFrame:
    """The pipeline's valid events parsed from Kafka records (what the rules see)."""
    parsed = parse_kafka(kafka_df, pipeline.fields, key_field=pipeline.event_id_field,
                         schema_version=pipeline.schema_version)
    return valid_events(parsed, pipeline.fields)


def alerts_of(valid: DataFrame, pipeline: Pipeline, active: list[Rule]) -> DataFrame:
    """``(key, value)`` alert records of ``active`` on ``valid`` events."""
    matches = evaluate(valid, active)
    value: Column = alert_message(matches, pipeline.fields, pipeline.id)
    return matches.select(F.col("_event_id").alias("key"), value.alias("value"))


def analysable(spark: SparkSession, pipeline: Pipeline) -> DataFrame:
    """An empty frame with the exact columns the rules see (to analyse them before a start)."""
    fields = pipeline.fields
    parsed = parse_kafka(empty_kafka_frame(spark), fields, key_field=None, schema_version=0)
    return valid_events(parsed, fields)


def recent_events(spark: SparkSession, pipeline: Pipeline, *, bootstrap: str,
                  per_partition: int = 1000) -> DataFrame:
    """The pipeline's last ``per_partition`` records of each Kafka partition, parsed and
    valid (where a rule that failed at run time is looked for)."""
    ends = end_offsets(bootstrap, pipeline.topic)
    start = {p: max(0, end - per_partition) for p, end in ends.items()}
    records = read_records(spark, bootstrap=bootstrap, topic=pipeline.topic, start=start)
    return valid_records(records, pipeline)


def gap_records(spark: SparkSession, pipeline: Pipeline, rules: list[Rule], *,
                bootstrap: str) -> DataFrame | None:
    """The alert records of ``rules`` (guarded) on the records that reached Kafka from the
    earliest of their save times to now (None when no rule has a save time or no record
    arrived since).

    A rule joins a running detect query by a restart, which resumes at the last real-time
    batch the old query committed; the records between the rule's save and that point were
    judged without it. This batch read judges them, so a rule applies to every record after
    its save. Records it shares with the restarted query get the same alert ids (deduplicated
    downstream)."""
    saved = [r.changed_at for r in rules if r.changed_at is not None]
    if not saved:
        return None
    since_ms = int(min(saved).astimezone(UTC).timestamp() * 1000)
    spans = offsets_since(bootstrap, pipeline.topic, since_ms)
    if all(first == end for first, end in spans.values()):  # nothing reached Kafka since
        return None
    records = read_records(spark, bootstrap=bootstrap, topic=pipeline.topic,
                           start={p: a for p, (a, _) in spans.items()},
                           end={p: b for p, (_, b) in spans.items()})
    return alert_records(records, pipeline, [guarded(r) for r in rules])


def guarded(rule: Rule) -> Rule:
    """``rule`` restricted to records that reached Kafka after the rule was last saved."""
    if rule.changed_at is None:
        return rule
    since = rule.changed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return replace(rule, expression=f"({rule.expression}) AND _kafka_timestamp >= "
                                    f"TIMESTAMP '{since}'")


class Detector:
    """The pipeline's detect query: start, restart with new rules, stop.

    ``reload`` and ``stop`` are serialised by a lock, so a rule change arriving while the
    pipeline stops never starts a new query afterwards.
    """

    def __init__(self, spark: SparkSession, pipeline: Pipeline, paths: Paths, *,
                 bootstrap: str, topic_out: str, interval: str) -> None:
        self.spark = spark
        self.pipeline = pipeline
        self.paths = paths
        self.bootstrap = bootstrap
        self.topic_out = topic_out
        self.interval = interval
        self.rules: list[Rule] = []
        self.rules_in_plan: list[Rule] = []  # the rules as evaluated (new ones guarded)
        self.query = None
        self.restarts = 0
        self._lock = threading.Lock()
        self._stopped = False
        self._gaps: list[threading.Thread] = []
        self._valid: DataFrame | None = None

    @property
    def checkpoint(self) -> str:
        return f"{self.paths.checkpoint}/detect"

    def _start(self, active: list[Rule], restart: bool = False) -> None:
        """Start the query. On a restart the rules that were not running before apply only to
        records that reached Kafka after they were saved: the restart re-reads the interrupted
        real-time batch, which the old rules already judged, and a new rule (or version) must
        not judge those records after the fact."""
        running = {(r.id, r.version): r for r in self.rules_in_plan}
        plan = [running.get((r.id, r.version)) or (guarded(r) if restart else r)
                for r in active]
        joining = [r for r in active if restart and (r.id, r.version) not in running]
        self.rules, self.rules_in_plan = list(active), plan
        # The gap's records are judged beside the new query (the old one has stopped, so its
        # last commit, where the new one resumes, is before the gap read's end); a stop waits
        # for it.
        if joining:
            gap = threading.Thread(target=self._judge_gap, args=(joining,), name="detect-gap",
                                   daemon=True)
            gap.start()
            self._gaps = [t for t in self._gaps if t.is_alive()] + [gap]
        self._start_query(plan)

    def _start_query(self, plan: list[Rule]) -> None:
        if not plan:  # nothing to detect: no query until a rule arrives
            self.query = None
            return
        if self._valid is None:  # the parsed source serves every restart (a new query each)
            source = stream_records(self.spark, bootstrap=self.bootstrap,
                                    topics=[self.pipeline.topic])
            self._valid = valid_records(source, self.pipeline)
        self.query = (
            alerts_of(self._valid, self.pipeline, plan).writeStream
            .queryName(f"{self.pipeline.slug}_detect")
            .format("kafka")
            .option("kafka.bootstrap.servers", self.bootstrap)
            .option("topic", self.topic_out)
            .option("kafka.linger.ms", "0")
            .option("checkpointLocation", self.checkpoint)
            .outputMode("update")
            .trigger(realTime=self.interval)
            .start()
        )

    def _judge_gap(self, joining: list[Rule]) -> None:
        """Alerts of the rules that joined at a restart on the records since their save that
        the restarted query will not read again (``gap_records``)."""
        started = time.monotonic()
        try:
            records = gap_records(self.spark, self.pipeline, joining, bootstrap=self.bootstrap)
            if records is None:
                return
            write_records(records, bootstrap=self.bootstrap, topic=self.topic_out)
        except Exception as exc:  # the restarted query keeps running; the gap is logged
            log.warning("pipeline=%s rules %s: records between their save and the restart "
                        "not judged: %s", self.pipeline.id, [r.id for r in joining],
                        str(exc).splitlines()[0] if str(exc) else exc)
            return
        log.info("pipeline=%s rules %s judged on the records since their save in %.2f s",
                 self.pipeline.id, [r.id for r in joining], time.monotonic() - started)

    def start(self, active: list[Rule]) -> None:
        with self._lock:
            self._start(active)
        log.info("pipeline=%s detect query %s started with %d rules (real-time, %s)",
                 self.pipeline.id, self.query.id if self.query else None, len(active),
                 self.interval)

    def reload(self, active: list[Rule]) -> bool:
        """Restart the query with ``active`` when they differ from the running rules."""
        return self.restart(active, only_if_changed=True)

    def restart(self, active: list[Rule], *, only_if_changed: bool = False) -> bool:
        """Stop the query (if it still runs) and start it with ``active``, same checkpoint."""
        with self._lock:
            if self._stopped or (only_if_changed and active == self.rules):
                return False
            started = time.monotonic()
            if self.query is not None:
                self.query.stop()
            stopped = time.monotonic()
            self._start(active, restart=True)
            self.restarts += 1
        log.info("pipeline=%s detect query restarted with %d rules (stop %.2f s, start %.2f s)",
                 self.pipeline.id, len(active), stopped - started, time.monotonic() - stopped)
        return True

    def stop(self, gap_timeout: float = 120.0) -> None:
        with self._lock:
            self._stopped = True
            if self.query is not None:
                self.query.stop()
            for gap in self._gaps:
                gap.join(gap_timeout)

    def failure(self) -> str | None:
        """The query's error when it died by itself (None while it runs or after a stop)."""
        with self._lock:
            if self._stopped or self.query is None or self.query.isActive:
                return None
            exc = self.query.exception()
            return None if exc is None else str(exc)
