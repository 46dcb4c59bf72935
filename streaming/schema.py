"""A pipeline's declared schema (catalog JSON) turned into what Spark needs.

The catalog stores a pipeline schema as ``[{name, type, nullable}]`` with types from
``catalog.rules.field_types.FieldType``; here it becomes a ``StructType`` to parse Kafka JSON with,
plus the two fields the engine derives meaning from: the event key and the event time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from catalog.rules.field_types import FieldType, default_key_field

_SIMPLE: dict[str, DataType] = {
    "string": StringType(),
    "int": IntegerType(),
    "integer": IntegerType(),
    "smallint": ShortType(),
    "bigint": LongType(),
    "long": LongType(),
    "float": FloatType(),
    "double": DoubleType(),
    "boolean": BooleanType(),
    "timestamp": TimestampType(),
    "timestamp_ntz": TimestampNTZType(),
    "date": DateType(),
}
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")
# Names that mark a field as "when the event happened" (the bronze partition key).
EVENT_TIME_NAMES = ("event_time", "event_timestamp", "timestamp", "ts", "transaction_time")


@dataclass(frozen=True)
class Field:
    """One declared field of a pipeline's events."""

    name: str
    type: str
    nullable: bool
    spark_type: DataType


def spark_type_of(type_name: str) -> DataType:
    """The Spark type of a catalog field type (e.g. ``float`` → ``DoubleType``)."""
    name = FieldType(type_name).spark_type_name.lower()
    if name in _SIMPLE:
        return _SIMPLE[name]
    match = _DECIMAL.fullmatch(name)
    if match:
        return DecimalType(int(match.group(1)), int(match.group(2)))
    raise ValueError(f"unsupported Spark type {name!r} for field type {type_name!r}")


def fields_of(schema: Sequence[Mapping]) -> list[Field]:
    """The pipeline's fields from the catalog's ``schema`` JSON, in declared order."""
    return [
        Field(f["name"], str(f["type"]), bool(f.get("nullable", True)), spark_type_of(f["type"]))
        for f in schema
    ]


def struct_type(fields: Sequence[Field]) -> StructType:
    """The parse schema: every field nullable, since required-ness is checked after parsing."""
    return StructType([StructField(f.name, f.spark_type, True) for f in fields])


def event_time_field(fields: Sequence[Field]) -> str | None:
    """The field holding the event's own time, if the schema has one.

    A timestamp-typed field named ``event_time``/``event_timestamp``/``timestamp``/``ts``/
    ``transaction_time`` (in that order of preference), else the first timestamp field whose
    name ends in ``_time``/``_timestamp``. ``None`` means the Kafka timestamp is used instead.
    """
    stamps = [f for f in fields if isinstance(f.spark_type, TimestampType | TimestampNTZType)]
    for name in EVENT_TIME_NAMES:
        for f in stamps:
            if f.name.lower() == name:
                return f.name
    for f in stamps:
        if f.name.lower().endswith(("_time", "_timestamp")):
            return f.name
    return None


def key_field_of(schema: Sequence[Mapping], key_field: str | None) -> str | None:
    """The field whose value is the event id, or ``None`` for a coordinate hash."""
    if key_field:
        return key_field
    return default_key_field(list(schema))
