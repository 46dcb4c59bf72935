"""Kafka records → typed events + quarantine (docs/architecture.md, Data flow).

A record is valid when it is UTF-8, a JSON object, has every non-nullable field and every
present field fits its declared type as ``catalog.rules.field_types.json_value_fits`` defines it
(int32/int64 ranges, finite numbers, ISO-8601 timestamp strings — no epoch numbers —,
``YYYY-MM-DD`` dates, JSON booleans). Everything else goes to quarantine with its raw bytes and
a reason; nothing is dropped silently. One known leniency: a ``string`` field also accepts a
JSON number/boolean/object and stores its JSON text. Keys not in the schema are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    FloatType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from streaming.schema import Field, event_time_field

CORRUPT = "_corrupt_record"
JSON = "_json"
TYPED = "_typed"
METADATA = [
    "_event_id",
    "_kafka_partition",
    "_kafka_offset",
    "_kafka_timestamp",
    "_ingested_at",
    "_schema_version",
    "event_date",
]
# Same shapes as catalog.rules.field_types (_TIMESTAMP_RE, _DATE_RE), in Java regex syntax.
TIMESTAMP_RE = (
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
)
DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
_AS_TEXT = (TimestampType, DateType)
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, "
    "timestamp timestamp, timestampType int"
)
_OPTIONS = {"columnNameOfCorruptRecord": CORRUPT}


def empty_kafka_frame(spark: SparkSession) -> DataFrame:
    """A Kafka-source-shaped empty DataFrame, built without Python workers."""
    return spark.range(0).selectExpr(
        *[f"CAST(NULL AS {t}) AS {n}" for n, t in (c.split() for c in KAFKA_SCHEMA.split(", "))]
    )


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _json_schema(fields: Sequence[Field]) -> StructType:
    """What ``from_json`` reads: timestamps/dates as text, checked and cast by ``_typed``."""
    out = [
        StructField(f.name, StringType() if isinstance(f.spark_type, _AS_TEXT) else f.spark_type)
        for f in fields
    ]
    return StructType([*out, StructField(CORRUPT, StringType())])


def _typed_value(f: Field, value: Column) -> Column:
    if isinstance(f.spark_type, TimestampType):
        return F.when(value.rlike(TIMESTAMP_RE), value.try_cast("timestamp"))
    if isinstance(f.spark_type, DateType):
        return F.when(value.rlike(DATE_RE), value.try_cast("date"))
    if isinstance(f.spark_type, FloatType | DoubleType):
        finite = ~F.isnan(value) & (F.abs(value) != F.lit(float("inf")))
        return F.when(finite, value)
    return value


def _labelled(label: str, names: list[Column]) -> Column:
    joined = F.concat_ws(", ", *names) if names else F.lit("")
    return F.when(joined != "", F.concat(F.lit(f"{label}: "), joined))


def _corrupt() -> Column:
    parsed = F.col(JSON)
    return parsed.isNull() | parsed[CORRUPT].isNotNull()


def _is_valid(fields: Sequence[Field]) -> Column:
    """Cheap validity test run on every record (the reason is only built for bad ones)."""
    parsed, typed = F.col(JSON), F.col(TYPED)
    ok = F.col("value").isNotNull() & F.expr("is_valid_utf8(_raw)") & ~_corrupt()
    for f in fields:
        if not f.nullable:
            ok = ok & typed[f.name].isNotNull()
        elif isinstance(f.spark_type, (*_AS_TEXT, FloatType, DoubleType)):
            ok = ok & (parsed[f.name].isNull() | typed[f.name].isNotNull())
    return F.coalesce(ok, F.lit(False))


def _reason(fields: Sequence[Field]) -> Column:
    """Why a (known bad) record is rejected, most basic problem first."""
    raw, parsed, typed, corrupt = F.col("_raw"), F.col(JSON), F.col(TYPED), _corrupt()
    loose = F.from_json(raw, ", ".join(f"{_q(f.name)} string" for f in fields))
    wrong = {
        f.name: F.when(corrupt, loose[f.name].isNotNull() & parsed[f.name].isNull())
        .otherwise(parsed[f.name].isNotNull() & typed[f.name].isNull())
        for f in fields
    }
    wrong_names = [F.when(w, F.lit(name)) for name, w in wrong.items()]
    missing_names = [
        F.when(typed[f.name].isNull() & ~wrong[f.name], F.lit(f.name))
        for f in fields
        if not f.nullable
    ]
    detail = F.concat_ws(
        "; ", _labelled("wrong_type", wrong_names), _labelled("missing_required", missing_names)
    )
    return (
        F.when(F.col("value").isNull(), F.lit("empty_value"))
        .when(~F.expr("is_valid_utf8(_raw)"), F.lit("invalid_utf8"))
        .when(corrupt & F.get_json_object(raw, "$").isNull(), F.lit("invalid_json"))
        .when(corrupt & F.expr("json_object_keys(_raw)").isNull(), F.lit("not_an_object"))
        .when(detail != "", detail)
        .otherwise(F.lit("wrong_type"))
    )


def typed_struct(text: Column, fields: Sequence[Field]) -> Column:
    """The typed fields of a JSON event text, as ``parse_kafka``'s ``_typed`` (NULL where a
    field is absent or does not fit its type; no validity check)."""
    parsed = F.from_json(text, _json_schema(fields), _OPTIONS)
    return F.struct(*[_typed_value(f, parsed[f.name]).alias(f.name) for f in fields])


def event_id_column(key_field: str | None) -> Column:
    """``_event_id``: the key field's value as a string, else a hash of the Kafka coordinates."""
    coords = F.sha2(F.concat_ws("|", "topic", "partition", "offset"), 256)
    if key_field is None:
        return coords
    return F.coalesce(F.col(TYPED)[key_field].cast("string"), coords)


def parse_kafka(
    kafka_df: DataFrame,
    fields: Sequence[Field],
    *,
    key_field: str | None,
    schema_version: int,
) -> DataFrame:
    """One row per Kafka record: parsed and typed structs, metadata and ``_valid``.

    ``event_date`` is the UTC date of the event's own time field when the schema has one
    (see ``schema.event_time_field``) and it is set, else of the Kafka record timestamp.
    Callers persist this once and split it with ``valid_events`` / ``quarantine_rows``.
    """
    raw = F.col("_raw")
    time_field = event_time_field(fields)
    kafka_ts = F.col("timestamp")
    event_ts = F.coalesce(F.col(TYPED)[time_field], kafka_ts) if time_field else kafka_ts
    with_json = kafka_df.withColumn("_raw", F.col("value").cast("string")).withColumn(
        JSON, F.from_json(raw, _json_schema(fields), _OPTIONS)
    )
    typed = F.struct(*[_typed_value(f, F.col(JSON)[f.name]).alias(f.name) for f in fields])
    return with_json.withColumn(TYPED, typed).select(
        "value", "topic", "partition", "offset", "timestamp", TYPED,
        _is_valid(fields).alias("_valid"),
        event_id_column(key_field).alias("_event_id"),
        F.col("partition").alias("_kafka_partition"),
        F.col("offset").alias("_kafka_offset"),
        kafka_ts.alias("_kafka_timestamp"),
        F.current_timestamp().alias("_ingested_at"),
        F.lit(schema_version).alias("_schema_version"),
        F.to_date(event_ts).alias("event_date"),
    )


def valid_events(parsed: DataFrame, fields: Sequence[Field]) -> DataFrame:
    """The bronze shape: the schema's typed fields then the metadata columns."""
    cols = [F.col(TYPED)[f.name].alias(f.name) for f in fields]
    return parsed.where(F.col("_valid")).select(*cols, *METADATA)


def quarantine_rows(parsed: DataFrame, fields: Sequence[Field]) -> DataFrame:
    """The quarantine shape: raw bytes, reason, Kafka coordinates and when it was seen."""
    bad = parsed.where(~F.col("_valid")).withColumn("_raw", F.col("value").cast("string"))
    bad = bad.withColumn(JSON, F.from_json(F.col("_raw"), _json_schema(fields), _OPTIONS))
    return bad.select(
        F.col("value").alias("raw_value"),
        _reason(fields).alias("reason"),
        "topic",
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("_ingested_at").alias("quarantined_at"),
        F.to_date("_ingested_at").alias("quarantine_date"),
    )
