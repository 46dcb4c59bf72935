"""Velocity rules' stateful streaming query: Kafka → parse → lateness → per-entity event logs →
conditions → the pipeline's alerts topic (and too-late events → quarantine).

A micro-batch query of its own beside detect and the archive, in the same Spark application:

1. the pipeline's events topic, parsed with its schema (``streaming.parse``), valid events;
2. ``LatenessProcessor``: too late or not per Kafka partition (``velocity_processors``);
3. each event copied once per key field the rules partition by (never once per rule), grouped
   by (key field, key value): ``KeyProcessor`` keeps the entity's recent events and emits the
   terms' values for each arrival and each re-evaluation;
4. ``foreachBatch``: the evaluations of one event are joined across its key fields, each
   rule's condition is evaluated in Spark, matches become alert messages (same alert id and
   format as detect, plus ``late`` for an alert first raised by a re-evaluation) on the alerts
   topic, so the fan-out and the archive take them unchanged; too-late events are appended to
   quarantine with reason ``late`` (idempotent per batch: ``txnAppId``/``txnVersion``).

Exactly once across restarts: the state is checkpointed with the offsets
(``<checkpoints>/velocity``); a replayed batch recomputes the same evaluations from the same
state, every alert sink ignores an alert id it holds and the quarantine append is skipped by
Delta. A rule change restarts this query alone on the same checkpoint: the state is per key
field, not per rule, so the other rules keep their windows; a new rule version judges the
records that reached Kafka after it was saved.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import reduce
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    FloatType,
    IntegralType,
    MapType,
    NumericType,
    TimestampNTZType,
    TimestampType,
)

from catalog.settings import get_settings
from streaming.alerts import alert_message
from streaming.detect import guarded
from streaming.kafka_io import stream_records, write_records
from streaming.parse import KAFKA_SCHEMA, TYPED, parse_kafka, typed_struct, valid_events
from streaming.pipeline import Paths, Pipeline
from streaming.rules import (
    MATCHED,
    Rule,
    analyse_all,
    evaluate,
    explode_matched,
    matched_ids,
    record_states,
    rule_metadata,
)
from streaming.sinks import delta
from streaming.velocity_processors import (
    KEYLESS,
    LATENESS_COLUMNS,
    LATENESS_SCHEMA,
    OUTPUT_SCHEMA,
    KeyProcessor,
    LatenessProcessor,
)
from streaming.velocity_rules import KAFKA_TS, Compiled, compile_rules
from streaming.velocity_state import MICROS

log = logging.getLogger(__name__)
ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
QUERY_CONF = {
    # transformWithState keeps its state in RocksDB only.
    "spark.sql.streaming.stateStore.providerClass": ROCKSDB,
    # No batch without new records (the idle-key timers fire with the next records instead).
    "spark.sql.streaming.noDataMicroBatches.enabled": "false",
    # A batch commits a changelog of the keys it changed instead of uploading RocksDB files
    # (snapshots are uploaded in the background): the commit no longer costs a file sync and
    # upload per stateful step and partition, the largest fixed cost of a small batch.
    "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    # The batch sink keeps the batch's rows in memory for a few reads only: not worth
    # compressing them column by column.
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    # A restart needs the last snapshot and the changelogs after it (a snapshot every 10
    # batches): Spark's default keeps 100 batches, about ten RocksDB snapshots that share few
    # files (compaction rewrites them): a soak at 10,000 events/s had filled 16 GB in 17 minutes.
    "spark.sql.streaming.minBatchesToRetain": "20",
    # Every state write looked its key up first, only to count the state's rows for the
    # progress report (a fifth of the velocity step's RocksDB time in a profile of full
    # windows): the report's numRowsTotal is not kept.
    "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows": "false",
}
STATE_CACHE = "spark.sql.streaming.stateStore.rocksdb.blockCacheSizeMB"
TERM_TYPES = {"count": "bigint", "sum": "double", "avg": "double"}
# Spark's data sources written through their own (V1) write path, where a batch write runs its
# query apart from the command and metrics observed on it are never handed over: the velocity
# batch writes Kafka through the V2 path (``_v2_kafka_writes``).
V1_SOURCES = "spark.sql.sources.useV1SourceList"
OBSERVATION_WAIT_SECONDS = 30.0
# The Java engine's checkpoint, named after its state's layout (an entity's head and chunks of
# entries; ``velocity-jvm`` held each log in one value): a new layout starts a new checkpoint.
JVM_CHECKPOINT = "velocity-jvm2"


def _micros(col: Column, timestamp: bool) -> Column:
    return F.unix_micros(col.cast("timestamp")) if timestamp else col


def velocity_events(parsed: DataFrame, pipeline: Pipeline, compiled: Compiled) -> DataFrame:
    """The valid events as the stateful steps take them (``velocity_processors.EVENT_SCHEMA``).
    """
    fields = {f.name: f for f in pipeline.fields}
    typed = F.col(TYPED)

    def is_time(name: str) -> bool:
        return isinstance(fields[name].spark_type, TimestampType | TimestampNTZType)

    kept = [_micros(typed[n], is_time(n)).alias(n) for n in compiled.kept]
    kept.append(F.unix_micros(F.col("timestamp")).alias(KAFKA_TS))
    keys = F.to_json(F.create_map(*[c for n in compiled.key_fields
                                    for c in (F.lit(n), typed[n].cast("string"))]))
    lateness = compiled.lateness_field
    t = _micros(typed[lateness], True) if lateness else F.lit(None).cast("long")
    return parsed.where(F.col("_valid")).select(
        F.col("partition").alias("p"), F.col("offset").alias("o"), F.col("_event_id").alias(
            "eid"), F.col("value").cast("string").alias("raw"), F.col("timestamp").alias("kts"),
        t.alias("t"), F.to_json(F.struct(*kept)).alias("vals"), keys.alias("keys"))


def jvm_events(parsed: DataFrame, pipeline: Pipeline, compiled: Compiled) -> DataFrame:
    """The valid events as the compiled lateness step takes them: Kafka coordinates, id, text
    (``raw``), Kafka time in micros (``kts_us``), the lateness time ``t`` and the typed record
    ``rec`` (carried to the event's evaluations: the conditions and the alert read it instead
    of parsing ``raw`` again; ``jvm_keyed`` derives the kept fields and keys from it).
    """
    typed = F.col(TYPED)
    lateness = compiled.lateness_field
    t = _micros(typed[lateness], True) if lateness else F.lit(None).cast("long")
    return parsed.where(F.col("_valid")).select(
        F.col("partition").alias("p"), F.col("offset").alias("o"), F.col("_event_id").alias(
            "eid"), F.col("value").cast("string").alias("raw"),
        F.unix_micros(F.col("timestamp")).alias("kts_us"), t.alias("t"), typed.alias("rec"))


def jvm_keyed(step1: DataFrame, pipeline: Pipeline, compiled: Compiled) -> DataFrame:
    """The lateness step's rows, one per key field (``kf``, ``kv``), with the kept fields as a
    struct ``vals`` (in ``jvm_fields`` order; integers as long, other numbers as double, times
    in micros, everything else as text, as the JSON of the Python steps reads them).

    Derived from ``rec`` after the lateness step, not before: the fewer columns a stateful
    step converts to Java objects and back, the cheaper."""
    fields = {f.name: f for f in pipeline.fields}
    rec = F.col("rec")
    kept = []
    for name in compiled.kept:
        spark_type = fields[name].spark_type
        col = rec[name]
        if isinstance(spark_type, TimestampType | TimestampNTZType):
            col = F.unix_micros(col.cast("timestamp"))
        elif isinstance(spark_type, IntegralType):
            col = col.cast("long")
        elif isinstance(spark_type, FloatType):
            col = col.cast("string").cast("double")  # the float's shortest text, as JSON has
        elif isinstance(spark_type, NumericType):
            col = col.cast("double")
        elif not isinstance(spark_type, BooleanType):
            col = col.cast("string")
        kept.append(col.alias(name))
    kept.append(F.col("kts_us").alias(KAFKA_TS))
    keys = F.create_map(*[c for n in compiled.key_fields
                          for c in (F.lit(n), rec[n].cast("string"))])
    pairs = F.explode(keys)
    return step1.select("*", F.struct(*kept).alias("vals"), pairs.alias("kf", "value")).select(
        "kf", F.coalesce("value", F.concat(F.lit(KEYLESS), "eid")).alias("kv"),
        *step1.columns, "vals")


def jvm_fields(compiled: Compiled) -> list[str]:
    """The kept fields in the order of ``jvm_keyed``' ``vals``."""
    return [*compiled.kept, KAFKA_TS]


def jvm_evaluations(events: DataFrame, pipeline: Pipeline, compiled: Compiled, *,
                    lateness_seconds: float, idle_seconds: float) -> DataFrame:
    """``evaluations`` with the compiled steps (``jvm/velocity``): the same evaluations,
    computed in the JVM (no Python worker, no per-row Python calls, the logs in a compact
    binary form), carrying the typed record (``KeyProcessor`` in Java: ``rec``, ``kept``, and
    ``vals`` as a struct of every term column)."""
    spark = events.sparkSession
    steps = spark._jvm.io.sentinel.velocity.Steps  # type: ignore[union-attr]
    step1 = DataFrame(steps.lateness(events._jdf, int(lateness_seconds * MICROS)), spark)
    keyed = jvm_keyed(step1, pipeline, compiled)
    config = {
        "fields": jvm_fields(compiled),
        "time_fields": [*compiled.time_fields, KAFKA_TS],
        "kafka_ts": KAFKA_TS,
        "idle_ms": int(idle_seconds * 1000),
        "terms": {kf: [{"column": t.column, "function": t.function, "argument": t.argument,
                        "distinct": t.distinct, "order_by": t.order_by, "window": t.window}
                       for t in terms] for kf, terms in compiled.terms.items()},
    }
    out = DataFrame(steps.entities(keyed._jdf, json.dumps(config)), spark)
    return out.select(*[F.timestamp_micros("kts_us").alias("kts") if c == "kts_us" else c
                        for c in out.columns])


def resolve_engine(spark: SparkSession, engine: str) -> str:
    """``jvm`` or ``python`` for a ``SENTINEL_VELOCITY_ENGINE`` value (``auto``: jvm when the
    compiled steps are on the classpath)."""
    if engine == "python":
        return engine
    if jvm_available(spark):
        return "jvm"
    if engine == "jvm":
        raise RuntimeError("SENTINEL_VELOCITY_ENGINE=jvm but the velocity jar is not on the "
                           "driver's classpath: build it (python -m streaming.velocity_jar) "
                           "and start the driver again")
    return "python"


def jvm_available(spark: SparkSession) -> bool:
    """Whether the compiled steps are on the driver's classpath."""
    from py4j.java_gateway import JavaClass

    steps = spark._jvm.io.sentinel.velocity.Steps  # type: ignore[union-attr]
    return isinstance(steps, JavaClass)  # else a JavaPackage: the class is not there


def evaluations(events: DataFrame, compiled: Compiled, *, lateness_seconds: float,
                idle_seconds: float) -> DataFrame:
    """The stateful part of the plan with the Python processors (the reference): events →
    evaluations and too-late events (``OUTPUT_SCHEMA``)."""
    step1 = events.withColumn("g", F.lit(0)).groupBy("g").transformWithStateInPandas(
        LatenessProcessor(int(lateness_seconds * MICROS)), LATENESS_SCHEMA, "Append", "None")
    pairs = F.explode(F.from_json("keys", "map<string, string>"))
    keyed = step1.select("*", pairs.alias("kf", "value")).select(
        "kf", F.coalesce("value", F.concat(F.lit(KEYLESS), "eid")).alias("kv"),
        *LATENESS_COLUMNS)
    return keyed.groupBy("kf", "kv").transformWithState(
        KeyProcessor(compiled.terms, compiled.time_fields, int(idle_seconds * 1000)),
        OUTPUT_SCHEMA, "Append", "ProcessingTime")


def term_columns(compiled: Compiled, fields: dict[str, Any]) -> list[Column]:
    """Each shared term as a typed column read from the evaluation's ``vals``."""
    cols = []
    for terms in compiled.terms.values():
        for term in terms:
            value = F.col("vals")[term.column]
            if term.function in TERM_TYPES:
                col = value.cast(TERM_TYPES[term.function])
            elif term.argument and isinstance(fields[term.argument].spark_type,
                                              TimestampType | TimestampNTZType):
                col = F.timestamp_micros(value.cast("long"))
            else:
                col = value.cast(fields[term.argument].spark_type) if term.argument else value
            cols.append(col.alias(term.column))
    return cols


def kept_record(pipeline: Pipeline, compiled: Compiled) -> Column:
    """A re-evaluated event's typed record rebuilt from its kept fields (column ``kept``, the
    compiled steps' form of them, see ``jvm_events``); the fields not kept are NULL (no
    condition reads them)."""
    kept, cols = F.col("kept"), []
    for f in pipeline.fields:
        if f.name not in compiled.kept:
            cols.append(F.lit(None).cast(f.spark_type).alias(f.name))
            continue
        value = kept[f.name]
        if isinstance(f.spark_type, TimestampType):
            value = F.timestamp_micros(value)
        elif isinstance(f.spark_type, TimestampNTZType):
            value = F.timestamp_micros(value).cast(f.spark_type)
        elif not isinstance(f.spark_type, BooleanType):
            value = value.cast(f.spark_type)
        cols.append(value.alias(f.name))
    return F.struct(*cols)


def typed_record(frame: DataFrame, pipeline: Pipeline, compiled: Compiled) -> Column:
    """The typed record of each evaluation: the compiled steps carry it (``rec`` for an
    arrival, ``kept`` for a re-evaluation); the Python steps' rows carry the text, parsed
    here (``raw`` for an arrival, ``doc`` for a re-evaluation)."""
    if "rec" in frame.columns:
        return F.coalesce(F.col("rec"), kept_record(pipeline, compiled))
    return typed_struct(F.coalesce("raw", "doc"), pipeline.fields)


def condition_frame(merged: DataFrame, pipeline: Pipeline, compiled: Compiled,
                    keep: Iterable[str] = ()) -> DataFrame:
    """What a condition reads: the event's typed fields (``typed_record``), its id and Kafka
    coordinates, the term columns (then the columns of ``keep``)."""
    fields = {f.name: f for f in pipeline.fields}
    typed = typed_record(merged, pipeline, compiled)
    return merged.select(typed.alias(TYPED), "*").select(
        *[F.col(TYPED)[f.name].alias(f.name) for f in pipeline.fields],
        F.col("eid").alias("_event_id"), F.col("p").alias("_kafka_partition"),
        F.col("o").alias("_kafka_offset"), F.col("kts").alias("_kafka_timestamp"),
        "reeval", *term_columns(compiled, fields), *keep)


ROW, CONDITION, HITS = "_velocity_row", "_velocity_condition", "_velocity_hits"
ALERTS = "_velocity_alerts"


def one_key_field_rules(compiled: Compiled) -> dict[str, list[Rule]]:
    """The rules whose terms all partition by one key field, by that field."""
    out: dict[str, list[Rule]] = {}
    for c in compiled.rules:
        key_fields = {t.partition_by for t in c.velocity.terms}
        if len(key_fields) == 1:
            out.setdefault(key_fields.pop(), []).append(c.rule)
    return out


def with_conditions(out: DataFrame, pipeline: Pipeline, compiled: Compiled) -> DataFrame:
    """The stateful steps' rows with, for the rules over one key field, what their conditions
    read (struct ``_velocity_condition``), the ids of those that match (``_velocity_hits``,
    evaluations of their key field only) and, for an arrival, their alert messages
    (``_velocity_alerts``, the topic's JSON text, ``late`` false). Part of the streaming plan:
    analysed once when the query starts, not rebuilt by the batch sink for every batch."""
    by_field = one_key_field_rules(compiled)
    if not by_field:
        return out
    carried = out.select(F.struct(*out.columns).alias(ROW), *out.columns)
    frame = condition_frame(carried, pipeline, compiled, keep=[ROW])
    kf, kind = F.col(f"{ROW}.kf"), F.col(f"{ROW}.kind")
    hits = F.coalesce(*[F.when(kf == F.lit(field), matched_ids(rules))
                        for field, rules in sorted(by_field.items())])
    condition = [c for c in frame.columns if c != ROW]
    # The ids in a projection of their own: read twice below (the column and the messages),
    # Spark keeps them computed once rather than inlining the conditions into the lambda,
    # which has no generated code.
    matched = frame.select("*", F.when(kind == F.lit("eval"), hits).alias(HITS))
    rules = [r for rules in by_field.values() for r in rules]

    def message(rule_id: Column) -> Column:
        return alert_message(matched, pipeline.fields, pipeline.id, extra={"late": F.lit(False)},
                             rule={"rule_id": rule_id, **rule_metadata(rules, rule_id)})

    messages = F.when(~F.col("reeval"), F.transform(HITS, message))
    return matched.select(f"{ROW}.*", F.struct(*condition).alias(CONDITION), HITS,
                          messages.alias(ALERTS))


def fetch_records(bootstrap: str, topic: str, wanted: Iterable[tuple[int, int]],
                  timeout: float = 30.0) -> list[tuple[int, int, bytes, datetime]]:
    """The Kafka records at ``wanted`` (partition, offset), read one range per partition
    (a re-evaluation's alert carries the whole event, which the state does not keep)."""
    by_partition: dict[int, set[int]] = {}
    for p, o in wanted:
        by_partition.setdefault(p, set()).add(o)
    if not by_partition:
        return []
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout * 1000))
    out = []
    try:
        for p, offsets in by_partition.items():
            tp = TopicPartition(topic, p)
            consumer.assign([tp])
            consumer.seek(tp, min(offsets))
            deadline = time.monotonic() + timeout
            last = max(offsets)
            while offsets and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=1000).values():
                    for r in records:
                        if r.offset in offsets:
                            offsets.discard(r.offset)
                            out.append((p, r.offset, r.value,
                                        datetime.fromtimestamp(r.timestamp / 1000, UTC)))
                    if records and records[-1].offset >= last:
                        offsets.clear()
    finally:
        consumer.close()
    return out


def _merged_terms(evals: DataFrame, compiled: Compiled) -> Column:
    """An aggregate: the term values of one arrival's evaluations (one per key field) as one
    ``vals`` (the Python steps' map, or the compiled steps' struct of every term column,
    each set by the evaluation of its own key field only)."""
    if isinstance(evals.schema["vals"].dataType, MapType):
        return F.map_from_entries(F.flatten(F.collect_list(F.map_entries("vals")))).alias(
            "vals")
    return F.struct(*[F.first(F.col("vals")[c], ignorenulls=True).alias(c)
                      for c in sorted(compiled.columns)]).alias("vals")


class VelocityBatch:
    """``foreachBatch`` of the velocity query: quarantine the too-late events, evaluate the
    conditions, write the alerts."""

    def __init__(self, spark: SparkSession, pipeline: Pipeline, paths: Paths,
                 compiled: Compiled, *, bootstrap: str, topic_out: str) -> None:
        self.spark, self.pipeline, self.paths = spark, pipeline, paths
        self.compiled, self.bootstrap, self.topic_out = compiled, bootstrap, topic_out
        self.query_id = ""
        self.last: dict[str, Any] = {}

    def __call__(self, df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        phases: dict[str, float] = {}
        out = df.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts = self._first_pass(out, batch_id)
            phases["state"] = time.monotonic() - started  # the stateful steps run here
            writes = []
            if counts["late"]:
                writes.append(lambda: self._quarantine(out, batch_id))
            if counts["again"] or (counts["arrived"] and self._across()):
                writes.append(lambda: self._alerts(out, again=bool(counts["again"])))
            # The quarantine commit and the alerts overlap (each waits mostly on I/O).
            if len(writes) > 1:
                with ThreadPoolExecutor(max_workers=2, thread_name_prefix="velocity") as pool:
                    futures = [pool.submit(write) for write in writes]
                for future in futures:
                    future.result()
            elif writes:
                writes[0]()
            phases["sinks"] = time.monotonic() - started - phases["state"]
        finally:
            out.unpersist()
        self.last = {"batch_id": batch_id, **counts,
                     "ms": int((time.monotonic() - started) * 1000)}
        log.info("pipeline=%s velocity batch=%s late=%s evaluations=%s re-evaluations=%s "
                 "duration_ms=%s phases=%s", self.pipeline.id, batch_id, counts["late"],
                 counts["arrived"], counts["again"], self.last["ms"],
                 ",".join(f"{k}:{v:.2f}" for k, v in phases.items()))

    def _first_pass(self, out: DataFrame, batch_id: int) -> dict[str, int]:
        """One Spark job over the batch: the stateful steps (their rows cached in ``out``),
        the alert messages the streaming plan built for the arrivals (``ALERTS``) written,
        and the batch's counts observed on the way: too-late records, arrivals' evaluations,
        re-evaluations."""
        observation = Observation(f"velocity_{batch_id}")
        observed = out.observe(observation, *self._count_columns())
        if ALERTS in out.columns:
            alerts = observed.select(F.col("eid").alias("key"), F.explode(ALERTS).alias("value"))
            write_records(alerts, bootstrap=self.bootstrap, topic=self.topic_out)
        else:
            observed.write.format("noop").mode("overwrite").save()
        return self._observed(observation, out)

    def _observed(self, observation: Observation, out: DataFrame) -> dict[str, int]:
        """The observed counts; Spark hands them over when the write's query ends. Should they
        not come (a write path that runs its query apart from the command), the counts are
        taken from the cached rows instead, and said."""
        got: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: got.update(observation.get), daemon=True,
                                  name="velocity-observation")
        waiter.start()
        waiter.join(OBSERVATION_WAIT_SECONDS)
        if not got:
            log.warning("pipeline=%s velocity batch counts not observed in %s s: counting the "
                        "cached rows", self.pipeline.id, OBSERVATION_WAIT_SECONDS)
            row = out.agg(*self._count_columns()).first()
            assert row is not None
            got = row.asDict()
        return {k: int(v) for k, v in got.items()}

    def _count_columns(self) -> list[Column]:
        """Too-late records, arrivals' evaluations, re-evaluations (aggregates)."""
        kind = F.col("kind")
        first_field = F.lit(self.compiled.key_fields[0])  # a record: one row per key field
        return [F.count_if((kind == "late") & (F.col("kf") == first_field)).alias("late"),
                F.count_if((kind == "eval") & ~F.col("reeval")).alias("arrived"),
                F.count_if(F.col("reeval")).alias("again")]

    def _across(self) -> list[Rule]:
        """The rules whose terms partition by more than one key field."""
        single = {r.id for rules in one_key_field_rules(self.compiled).values() for r in rules}
        return [c.rule for c in self.compiled.rules if c.rule.id not in single]

    def _quarantine(self, out: DataFrame, batch_id: int) -> None:
        late = out.where(F.col("kind") == "late").dropDuplicates(["p", "o"])
        rows = late.select(
            F.col("raw").cast("binary").alias("raw_value"), F.lit("late").alias("reason"),
            F.lit(self.pipeline.topic).alias("topic"), F.col("p").alias("kafka_partition"),
            F.col("o").alias("kafka_offset"), F.col("kts").alias("kafka_timestamp"),
            F.current_timestamp().alias("quarantined_at"),
            F.to_date(F.current_timestamp()).alias("quarantine_date"),
        )
        delta.append(rows, self.paths.quarantine, query_id=self.query_id,
                     table="velocity-quarantine", batch_id=batch_id,
                     partition_by=["quarantine_date"])

    def matches(self, out: DataFrame) -> DataFrame:
        """One row per (evaluation, matching rule): the event's typed fields (from the record
        for an arrival, from the kept fields for a re-evaluation), terms, rule metadata.

        A rule whose terms all partition by one key field was evaluated on that key field's
        evaluations in the streaming plan (``with_conditions``: no shuffle, nothing to build
        per batch); only a rule over several key fields needs an arrival's evaluations joined
        across its key fields here."""
        pipeline, compiled = self.pipeline, self.compiled
        evals = out.where(F.col("kind") == "eval")
        by_field = one_key_field_rules(compiled)
        across = self._across()
        parts = []
        if by_field:  # evaluated in the streaming plan (``with_conditions``)
            parts.append(explode_matched(
                evals.where(F.size(HITS) > 0).select(f"{CONDITION}.*", HITS),
                [r for rules in by_field.values() for r in rules], column=HITS))
        if across:
            # An arrival is evaluated once per key field: join its terms; a re-evaluation is
            # its own evaluation (one key field, one arrival of the batch).
            group = F.when(F.col("reeval"),
                           F.concat_ws(":", "kf", F.col("seq").cast("string"))
                           ).otherwise(F.lit(""))
            carried = [c for c in ("raw", "doc", "rec", "kept") if c in evals.columns]
            merged = evals.groupBy("p", "o", "eid", "reeval", group.alias("g")).agg(
                *[F.first(c, ignorenulls=True).alias(c) for c in carried],
                F.first("kts", ignorenulls=True).alias("kts"),
                _merged_terms(evals, compiled))
            parts.append(evaluate(condition_frame(merged, pipeline, compiled), across))
        return reduce(DataFrame.unionByName, parts)

    def _alerts(self, out: DataFrame, *, again: bool) -> None:
        """Write the alerts the first pass did not: the arrivals' alerts of rules over several
        key fields, and those raised only by a re-evaluation, flagged late (their event read
        back from Kafka)."""
        matches = self.matches(out)
        if again:  # the conditions are evaluated once; the late rows and the write read them
            matches = matches.persist()
        try:
            # one row per arrival and key field, and a rule reads one of them (or their
            # join): one match per (rule, record), no deduplication
            across = [r.id for r in self._across()]
            arrived = matches.where(~F.col("reeval") & F.col(MATCHED).isin(across))
            alerts = self._messages(arrived, late=False)
            if again:
                late_rows = self._late_rows(matches)
                if late_rows:
                    alerts = alerts.unionByName(self._late_messages(late_rows))
            write_records(alerts, bootstrap=self.bootstrap, topic=self.topic_out)
        finally:
            if again:
                matches.unpersist()

    def _late_rows(self, matches: DataFrame) -> list[Any]:
        """The matches of re-evaluations that no arrival of this batch raised (one per rule
        and record). Both reads are small: the re-evaluations' matches, and the arrivals'
        matches of the records they re-evaluated (a record can arrive and be re-evaluated in
        the same batch), found by a broadcast of those records, not a shuffle of all."""
        keys = ["_rule_id", "_kafka_partition", "_kafka_offset"]
        found: dict[tuple[int, int, int], Any] = {}
        for r in (matches.where(F.col("reeval"))
                  .select(*keys, "severity", "score", "rule_description", "rule_version")
                  .collect()):
            found.setdefault((r[0], r[1], r[2]), r)
        if not found:
            return []
        spots = self.spark.createDataFrame(sorted({(p, o) for _, p, o in found}),
                                           "_kafka_partition int, _kafka_offset long")
        same = matches.where(~F.col("reeval")).join(
            F.broadcast(spots), ["_kafka_partition", "_kafka_offset"], "left_semi")
        for r in same.select(*keys).collect():
            found.pop((r[0], r[1], r[2]), None)
        return list(found.values())

    def _messages(self, matches: DataFrame, *, late: bool) -> DataFrame:
        value = alert_message(matches, self.pipeline.fields, self.pipeline.id,
                              extra={"late": F.lit(late)})
        return matches.select(F.col("_event_id").alias("key"), value.alias("value"))

    def _late_messages(self, rows: list[Any]) -> DataFrame:
        """Alerts first raised by a re-evaluation: the event is read back from Kafka."""
        pipeline = self.pipeline
        records = fetch_records(self.bootstrap, pipeline.topic,
                                {(r["_kafka_partition"], r["_kafka_offset"]) for r in rows})
        raw = self.spark.createDataFrame(
            [(None, v, pipeline.topic, p, o, ts, 0) for p, o, v, ts in records], KAFKA_SCHEMA)
        events = valid_events(parse_kafka(raw, pipeline.fields, key_field=pipeline.event_id_field,
                                          schema_version=pipeline.schema_version),
                              pipeline.fields)
        meta = self.spark.createDataFrame(
            [tuple(r) for r in rows],
            "_rule_id int, _kafka_partition int, _kafka_offset long, severity string, "
            "score double, rule_description string, rule_version int")
        matches = events.join(meta, ["_kafka_partition", "_kafka_offset"])
        return self._messages(matches, late=True)


class VelocityQuery:
    """The pipeline's velocity query: start with its rules, restart on a rule change, stop.

    Without velocity rules no query runs (its checkpoint and state wait for the next one).
    """

    def __init__(self, spark: SparkSession, pipeline: Pipeline, paths: Paths, *,
                 bootstrap: str, topic_out: str, trigger: float, max_offsets: int,
                 lateness_seconds: float, idle_seconds: float | None = None,
                 engine: str | None = None, state_partitions: int | None = None) -> None:
        self.spark, self.pipeline, self.paths = spark, pipeline, paths
        settings = get_settings()
        self.engine_setting = engine or settings.velocity_engine
        self.state_partitions = state_partitions or settings.velocity_state_partitions
        self.state_cache_mb = settings.velocity_state_cache_mb
        self.engine = resolve_engine(spark, self.engine_setting)
        self.bootstrap, self.topic_out = bootstrap, topic_out
        self.trigger, self.max_offsets = trigger, max_offsets
        self.lateness_seconds = lateness_seconds
        self.idle_seconds = idle_seconds
        self.rules: list[Rule] = []
        self.running: set[tuple[int, int]] = set()
        self.query = None
        self.batch: VelocityBatch | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def checkpoint(self) -> str:
        """The query's checkpoint; the engines' states differ, so each has its own, and so does
        each layout of the JVM engine's state (a new one starts from the earliest offsets and
        recomputes the same alerts: their ids are the same, the sinks idempotent)."""
        name = JVM_CHECKPOINT if self.engine == "jvm" else "velocity"
        return f"{self.paths.checkpoint}/{name}"

    def _compile(self, rules: list[Rule], restart: bool) -> Compiled:
        compiled = compile_rules(rules, self.pipeline.schema, self.pipeline.fields)
        # A rule version that joins a running stream judges the records after its save.
        for i, c in enumerate(compiled.rules):
            if restart and (c.rule.id, c.rule.version) not in self.running:
                compiled.rules[i] = replace(c, rule=guarded(c.rule))
        errors = dict(compiled.errors)
        probe = _probe_frame(self.spark, self.pipeline, compiled)
        bad = analyse_all(probe, [c.rule for c in compiled.rules])
        errors.update(bad)
        if bad:
            compiled.rules = [c for c in compiled.rules if c.rule not in bad]
        if errors:
            record_states([], errors)
        return compiled

    def _start(self, rules: list[Rule], restart: bool) -> None:
        self.rules = list(rules)
        if not rules:
            self.query = None
            return
        compiled = self._compile(rules, restart)
        if not compiled.rules:
            self.query = None
            return
        self.running = {(c.rule.id, c.rule.version) for c in compiled.rules}
        if self.engine == "python" and self.engine_setting == "auto":
            log.warning("velocity jar not built (python -m streaming.velocity_jar): velocity "
                        "rules run in the Python processors, far slower")
        source = stream_records(self.spark, bootstrap=self.bootstrap,
                                topics=[self.pipeline.topic], max_offsets=self.max_offsets)
        p = self.pipeline
        parsed = parse_kafka(source, p.fields, key_field=p.event_id_field,
                             schema_version=p.schema_version)
        idle = self.idle_seconds
        if idle is None:
            longest = max(t.window for ts in compiled.terms.values() for t in ts) / MICROS
            idle = longest + self.lateness_seconds + 60
        if self.engine == "jvm":
            out = jvm_evaluations(jvm_events(parsed, p, compiled), p, compiled,
                                  lateness_seconds=self.lateness_seconds, idle_seconds=idle)
        else:
            out = evaluations(velocity_events(parsed, p, compiled), compiled,
                              lateness_seconds=self.lateness_seconds, idle_seconds=idle)
        out = with_conditions(out, p, compiled)
        batch = VelocityBatch(self.spark, p, self.paths, compiled, bootstrap=self.bootstrap,
                              topic_out=self.topic_out)
        self.batch = batch
        # A query takes its own copy of the session's SQL conf when it starts: these settings are
        # set for it alone (the other queries of the application are stateless).
        with _query_conf(self.spark, self.conf()):
            self.query = (
                out.writeStream.queryName(f"{p.slug}_velocity")
                .foreachBatch(batch)
                .option("checkpointLocation", self.checkpoint)
                .trigger(processingTime=f"{self.trigger} seconds")
                .start()
            )
        batch.query_id = str(self.query.id)
        log.info("pipeline=%s velocity query %s started with rules %s over key fields %s "
                 "(lateness %ss, idle keys evicted after %.0f s, %s engine)", p.id,
                 self.query.id, sorted(self.running), compiled.key_fields,
                 self.lateness_seconds, idle, self.engine)

    def conf(self) -> dict[str, str]:
        """The SQL settings the query starts with (on top of the session's)."""
        return {**QUERY_CONF, **_v2_kafka_writes(self.spark),
                STATE_CACHE: str(self.state_cache_mb),
                # a new checkpoint only: a restart keeps the number its checkpoint holds
                "spark.sql.shuffle.partitions": str(self.state_partitions)}

    def start(self, rules: list[Rule]) -> None:
        with self._lock:
            self._start(rules, restart=False)

    def reload(self, rules: list[Rule]) -> bool:
        """Restart with ``rules`` when they differ from the running ones."""
        with self._lock:
            if self._stopped or rules == self.rules:
                return False
            started = time.monotonic()
            if self.query is not None:
                self.query.stop()
            self._start(rules, restart=True)
        log.info("pipeline=%s velocity query restarted with %d rules in %.2f s",
                 self.pipeline.id, len(rules), time.monotonic() - started)
        return True

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self.query is not None and self.query.isActive:
                self.query.stop()

    def failure(self) -> str | None:
        with self._lock:
            if self._stopped or self.query is None or self.query.isActive:
                return None
            exc = self.query.exception()
            return None if exc is None else str(exc)


def _v2_kafka_writes(spark: SparkSession) -> dict[str, str]:
    """The setting that writes Kafka through the V2 path (the other V1 sources unchanged)."""
    v1 = spark.conf.get(V1_SOURCES) or ""
    return {V1_SOURCES: ",".join(s for s in v1.split(",") if s.strip().lower() != "kafka")}


@contextmanager
def _query_conf(spark: SparkSession, conf: dict[str, str]) -> Iterator[None]:
    before = {k: spark.conf.get(k, None) for k in conf}
    for k, v in conf.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def _probe_frame(spark: SparkSession, pipeline: Pipeline, compiled: Compiled) -> DataFrame:
    """An empty frame with the columns a condition sees (to analyse the rules before a start)."""
    return condition_frame(spark.createDataFrame([], OUTPUT_SCHEMA), pipeline, compiled)
