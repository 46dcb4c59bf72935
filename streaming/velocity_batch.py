"""Velocity rules over the archive: Spark batch window queries with the stream's semantics.

Backtests and look-backs of a velocity rule (``catalog.rules.velocity``) compute each window
term for the archived events, then evaluate the rule's condition like any rule. The events are
bronze's, minus the records the velocity path quarantined as too late (reason ``late``, matched
on their Kafka partition and offset), one per event id (the first archived copy: earliest
ingestion, then partition and offset). The window of event e for a term holds the same key's
events x with e.t − W ≤ x.t ≤ e.t that are not after e in the order (t, partition, offset): it
is computed exactly as two standard window frames, the events of strictly earlier time
(``RANGE`` over the time in microseconds, ``[−W, −1]``) and e's equal-time peers up to e in
(partition, offset) order (``ROWS`` up to the current row), whose aggregates are combined
(counts and sums added, min/max of both, ``count(DISTINCT)`` as the size of the union of both
value sets). An event whose key or time is null has a null term.

Each event is evaluated once, on all archived events: the stream's answer for conditions that
only grow with the window (counts, max, sums of non-negative values compared with > or >=);
for others the stream, which decides on arrival and never withdraws, may have alerted more.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from catalog.rules.field_types import FieldType
from catalog.rules.velocity import VelocityRule, WindowTerm, is_velocity, velocity_rule
from streaming.pinned import in_range, read_pinned
from streaming.schema import Field, event_time_field

LATE = "late"


def schema_types(fields: list[Field]) -> dict[str, FieldType]:
    """The pipeline's fields as the rule language types them."""
    return {f.name: FieldType(f.type) for f in fields}


def accepted_events(bronze: DataFrame, quarantine: DataFrame | None) -> DataFrame:
    """Bronze without the records quarantined as too late, one row per event id."""
    events = bronze
    if quarantine is not None:
        late = quarantine.where(F.col("reason") == LATE).select(
            F.col("kafka_partition").alias("_kafka_partition"),
            F.col("kafka_offset").alias("_kafka_offset"))
        events = events.join(late, ["_kafka_partition", "_kafka_offset"], "left_anti")
    first = Window.partitionBy("_event_id").orderBy("_ingested_at", "_kafka_partition",
                                                    "_kafka_offset")
    return events.withColumn("_copy", F.row_number().over(first)).where("_copy = 1") \
        .drop("_copy")


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _term_value(term: WindowTerm) -> Column:
    """The term over the two frames ``_earlier`` (strictly earlier time) and ``_peers``."""
    key, t = F.col(_q(term.partition_by)), F.col(_q(term.order_by))
    micros = F.unix_micros(t)
    earlier = Window.partitionBy(key).orderBy(micros).rangeBetween(
        -term.window_seconds * 1_000_000, -1)
    peers = Window.partitionBy(key, micros).orderBy("_kafka_partition", "_kafka_offset") \
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    arg = F.lit(1) if term.argument is None else F.col(_q(term.argument))

    def both(agg) -> tuple[Column, Column]:
        return agg(arg).over(earlier), agg(arg).over(peers)

    if term.function == "count" and term.distinct:
        a, b = both(F.collect_set)
        return F.size(F.array_union(a, b)).cast("bigint")
    if term.function == "count":
        a, b = both(F.count)
        return a + b
    if term.function in ("sum", "avg"):
        (s1, s2), (n1, n2) = both(F.sum), both(F.count)
        total = F.when(s1.isNull(), s2).when(s2.isNull(), s1).otherwise(s1 + s2)
        if term.function == "sum":
            return total
        return F.when(n1 + n2 > 0, total.cast("double") / (n1 + n2))
    a, b = both(F.min if term.function == "min" else F.max)
    return F.least(a, b) if term.function == "min" else F.greatest(a, b)


def with_terms(context: DataFrame, rule: VelocityRule) -> DataFrame:
    """``context`` with one column per term (``_w0``, ...), each over all of ``context``."""
    out = context
    for term in rule.terms:
        key, t = F.col(_q(term.partition_by)), F.col(_q(term.order_by))
        known = out.where(key.isNotNull() & t.isNotNull())
        valued = known.select("_event_id", _term_value(term).alias(term.column))
        out = out.join(valued, "_event_id", "left")
    return out


def velocity_events(bronze: DataFrame, quarantine: DataFrame | None, fields: list[Field],
                    rule: VelocityRule, since: datetime, until: datetime) -> DataFrame:
    """The accepted events whose event time is in ``[since, until)``, with the rule's term
    columns computed over every accepted archived event that can be in their windows."""
    accepted = accepted_events(bronze, quarantine)
    widest = max(term.window_seconds for term in rule.terms)
    context = accepted  # windows on another field than the event time: the whole archive
    if all(term.order_by == event_time_field(fields) for term in rule.terms):
        context = in_range(accepted, fields, since - timedelta(seconds=widest), until)
    wanted = in_range(accepted, fields, since, until).select("_event_id")
    return with_terms(context, rule).join(wanted, "_event_id", "left_semi")


def rule_events(spark: SparkSession, bronze: DataFrame, quarantine_path: str,
                fields: list[Field], expression: str, since: datetime, until: datetime
                ) -> tuple[DataFrame, str]:
    """``(events to evaluate, the expression to evaluate on them)`` for a backtest or look-back
    over ``[since, until)``: for an ordinary rule, the archived events in range and the rule;
    for a velocity rule, the accepted events in range with its term columns and its condition.
    Raises ``RuleValidationError`` when a velocity rule no longer validates on the schema."""
    rule = velocity_rule(expression, schema_types(fields)) if is_velocity(expression) else None
    if rule is None:
        return in_range(bronze, fields, since, until), expression
    quarantine, _ = read_pinned(spark, quarantine_path)
    return velocity_events(bronze, quarantine, fields, rule, since, until), rule.condition
