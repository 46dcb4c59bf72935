"""Kafka records → typed events + quarantine (DESIGN §4 "Kafka messages", §6 step 1).

A record is valid when it is UTF-8, a JSON object, has every non-nullable field and every
present field has the declared type. Anything else goes to quarantine with its raw bytes and a
reason; nothing is dropped silently. String fields accept any JSON scalar (``5`` → ``"5"``);
numbers given as JSON strings (``"12"`` for an integer) are a wrong type. Keys not declared in
the schema are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from streaming.schema import Field, event_time_field, struct_type

CORRUPT = "_corrupt_record"
PARSED = "_parsed"
METADATA = [
    "_event_id",
    "_kafka_partition",
    "_kafka_offset",
    "_kafka_timestamp",
    "_ingested_at",
    "_schema_version",
    "event_date",
]


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _labelled(label: str, names: list[Column]) -> Column:
    joined = F.concat_ws(", ", *names) if names else F.lit("")
    return F.when(joined != "", F.concat(F.lit(f"{label}: "), joined))


def _reason(raw: Column, typed: Column, fields: Sequence[Field]) -> Column:
    """Why a record is rejected (``None`` for a valid one); costly checks run only when bad."""
    loose = F.from_json(raw, ", ".join(f"{_q(f.name)} string" for f in fields) or "x string")
    wrong = [F.when(loose[f.name].isNotNull() & typed[f.name].isNull(), F.lit(f.name))
             for f in fields]
    required = [f for f in fields if not f.nullable]
    missing = [F.when(typed[f.name].isNull(), F.lit(f.name)) for f in required]
    absent = [F.when(loose[f.name].isNull(), F.lit(f.name)) for f in required]
    missing_list = F.concat_ws(", ", *missing) if missing else F.lit("")
    field_reasons = F.concat_ws(
        "; ",
        _labelled("wrong_type", wrong),
        _labelled("missing_required", absent),
    )
    is_corrupt = typed.isNull() | typed[CORRUPT].isNotNull()
    return (
        F.when(F.col("value").isNull(), F.lit("empty_value"))
        .when(~F.expr(f"is_valid_utf8({_q('_raw')})"), F.lit("invalid_utf8"))
        .when(is_corrupt & F.get_json_object(raw, "$").isNull(), F.lit("invalid_json"))
        .when(is_corrupt & F.expr(f"json_object_keys({_q('_raw')})").isNull(),
              F.lit("not_an_object"))
        .when(is_corrupt, F.when(field_reasons != "", field_reasons).otherwise("wrong_type"))
        .when(missing_list != "", F.concat(F.lit("missing_required: "), missing_list))
    )


def event_id_column(key_field: str | None) -> Column:
    """``_event_id``: the key field's value as a string, else a hash of the Kafka coordinates."""
    coords = F.sha2(F.concat_ws("|", "topic", "partition", "offset"), 256)
    if key_field is None:
        return coords
    return F.coalesce(F.col(f"{PARSED}.{_q(key_field)}").cast("string"), coords)


def parse_kafka(
    kafka_df: DataFrame,
    fields: Sequence[Field],
    *,
    key_field: str | None,
    schema_version: int,
) -> DataFrame:
    """One row per Kafka record with the typed struct, metadata and ``_reason`` (null = valid).

    Callers persist this once and split it with ``valid_events`` / ``quarantine_rows``.
    """
    schema = struct_type(fields).add(CORRUPT, "string")
    raw = F.col("_raw")
    typed = F.col(PARSED)
    time_field = event_time_field(fields)
    kafka_ts = F.col("timestamp")
    event_ts = F.coalesce(typed[time_field], kafka_ts) if time_field else kafka_ts
    return (
        kafka_df.withColumn("_raw", F.col("value").cast("string"))
        .withColumn(PARSED, F.from_json(raw, schema, {"columnNameOfCorruptRecord": CORRUPT}))
        .select(
            "value", "topic", "partition", "offset", "timestamp", PARSED,
            _reason(raw, typed, fields).alias("_reason"),
            event_id_column(key_field).alias("_event_id"),
            F.col("partition").alias("_kafka_partition"),
            F.col("offset").alias("_kafka_offset"),
            kafka_ts.alias("_kafka_timestamp"),
            F.current_timestamp().alias("_ingested_at"),
            F.lit(schema_version).alias("_schema_version"),
            F.to_date(event_ts).alias("event_date"),
        )
    )


def valid_events(parsed: DataFrame, fields: Sequence[Field]) -> DataFrame:
    """The bronze shape: the schema's typed fields then the metadata columns."""
    cols = [F.col(f"{PARSED}.{_q(f.name)}").alias(f.name) for f in fields]
    return parsed.where(F.col("_reason").isNull()).select(*cols, *METADATA)


def quarantine_rows(parsed: DataFrame) -> DataFrame:
    """The quarantine shape: raw bytes, reason, Kafka coordinates and when it was seen."""
    return parsed.where(F.col("_reason").isNotNull()).select(
        F.col("value").alias("raw_value"),
        F.col("_reason").alias("reason"),
        "topic",
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("_ingested_at").alias("quarantined_at"),
        F.to_date("_ingested_at").alias("quarantine_date"),
    )
