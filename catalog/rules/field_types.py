"""Field types of a pipeline schema: what each event field may hold, and how schemas evolve.

A pipeline's schema is a list of `FieldSpec`s (the JSON body of ``POST /api/pipelines``). The
same types drive three things: validation of incoming Kafka JSON values (a value that does not fit
sends the event to quarantine), the Spark type of the bronze column (`FieldType.spark_type_name`;
streaming turns the names into a ``StructType``), and the rule validator (which columns a rule may
name, and which of them are boolean). This module imports neither pyspark nor sqlglot.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

MAX_FIELDS = 500
"""Most fields a pipeline schema may declare."""

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

ALERT_ROW_COLUMNS = frozenset(
    {
        "alert_id", "pipeline_id", "rule_id", "rule_version", "severity", "score",
        "rule_description", "event_id", "alert_timestamp", "transaction_data",
        "kafka_partition", "kafka_offset",
    }
)  # fmt: skip
"""Columns of an alert row (besides ``event_time``, which an alert copies from the event's own
time field): the engine adds them next to the event's fields, so a field may not share a name."""

RESERVED_FIELD_NAMES = frozenset({"event_date"} | ALERT_ROW_COLUMNS)
"""Names a user field may not take: `event_date` is the bronze partition column, the others are
alert columns."""

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_FLOAT32_MAX = 3.4028234663852886e38

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$"
)


class FieldType(StrEnum):
    """The value types an event field can have (the ``type`` of a schema field)."""

    STRING = "string"
    INTEGER = "integer"
    LONG = "long"
    FLOAT = "float"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    DATE = "date"

    @property
    def spark_type_name(self) -> str:
        """The Spark SQL type name of the bronze column (``int``, ``bigint``, ...)."""
        return _SPARK_TYPE_NAMES[self]

    @property
    def is_numeric(self) -> bool:
        """True for the number types."""
        return self in (FieldType.INTEGER, FieldType.LONG, FieldType.FLOAT, FieldType.DOUBLE)


_SPARK_TYPE_NAMES: Mapping[FieldType, str] = MappingProxyType(
    {
        FieldType.STRING: "string",
        FieldType.INTEGER: "int",
        FieldType.LONG: "bigint",
        FieldType.FLOAT: "float",
        FieldType.DOUBLE: "double",
        FieldType.BOOLEAN: "boolean",
        FieldType.TIMESTAMP: "timestamp",
        FieldType.DATE: "date",
    }
)

METADATA_COLUMNS: Mapping[str, FieldType] = MappingProxyType(
    {
        "_event_id": FieldType.STRING,
        "_kafka_partition": FieldType.INTEGER,
        "_kafka_offset": FieldType.LONG,
        "_kafka_timestamp": FieldType.TIMESTAMP,
        "_ingested_at": FieldType.TIMESTAMP,
        "_schema_version": FieldType.INTEGER,
    }
)
"""Columns the platform adds to every bronze row; rules may refer to them."""

# Type changes that keep every stored value representable (schema evolution).
WIDENINGS = frozenset(
    {
        (FieldType.INTEGER, FieldType.LONG),
        (FieldType.INTEGER, FieldType.DOUBLE),
        (FieldType.LONG, FieldType.DOUBLE),
        (FieldType.FLOAT, FieldType.DOUBLE),
    }
)


class SchemaError(ValueError):
    """A pipeline schema is invalid; `field` names the offending field when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class FieldSpec(BaseModel):
    """One field of a pipeline schema: its name, value type and whether it may be null/missing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: FieldType
    nullable: bool = True

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if name.startswith("_"):
            raise ValueError(
                f"field name {name[:40]!r} starts with '_': names starting with '_' are "
                "reserved for metadata columns"
            )
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"field name {name[:40]!r} is not valid: use 1-128 letters, digits and "
                "underscores, starting with a letter"
            )
        if name.lower() in RESERVED_FIELD_NAMES:
            what = "bronze partition column" if name.lower() == "event_date" else "alert column"
            raise ValueError(
                f"field name {name!r} is reserved ({what}); rename it, e.g. 'txn_{name.lower()}'"
            )
        return name


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_timestamp_text(value: str) -> bool:
    match = _TIMESTAMP_RE.match(value)
    if not match:
        return False
    day, hour_minute, seconds, fraction, zone = match.groups()
    text = f"{day}T{hour_minute}:{seconds or '00'}"
    if fraction:
        text += "." + fraction[:6].ljust(6, "0")
    if zone:
        text += "+00:00" if zone == "Z" else zone
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def json_value_fits(field_type: FieldType, value: Any) -> bool:
    """Whether a non-null value decoded by `json.loads` can be stored in a field of this type.

    Numbers: ``integer`` is an int32, ``long`` an int64 (JSON booleans are not numbers, and a
    float such as ``1.0`` is not an integer); ``float``/``double`` take any finite JSON number
    within their range. ``timestamp`` is an ISO-8601 date-time string (``T`` or space separator,
    optional seconds and fraction, optional ``Z`` or ``±hh:mm`` offset; without an offset it is
    read in the session time zone, UTC); epoch numbers are not accepted. ``date`` is a
    ``YYYY-MM-DD`` string naming a real calendar day.
    """
    match field_type:
        case FieldType.STRING:
            return isinstance(value, str)
        case FieldType.BOOLEAN:
            return isinstance(value, bool)
        case FieldType.INTEGER | FieldType.LONG:
            low, high = _INT32 if field_type is FieldType.INTEGER else _INT64
            return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        case FieldType.FLOAT | FieldType.DOUBLE:
            if not _is_number(value):
                return False
            try:
                number = float(value)
            except OverflowError:
                return False
            if not math.isfinite(number):
                return False
            return field_type is FieldType.DOUBLE or abs(number) <= _FLOAT32_MAX
        case FieldType.TIMESTAMP:
            return isinstance(value, str) and _is_timestamp_text(value)
        case FieldType.DATE:
            if not (isinstance(value, str) and _DATE_RE.match(value)):
                return False
            try:
                date.fromisoformat(value)
            except ValueError:
                return False
            return True
    return False  # pragma: no cover - every FieldType is matched above


def value_problem(spec: FieldSpec, value: Any) -> str | None:
    """Why `value` (``None`` = null or missing) cannot go into `spec`'s column; None if it can.

    The text is the quarantine reason stored with a rejected event.
    """
    if value is None:
        return None if spec.nullable else f"field {spec.name!r} is required but null or missing"
    if json_value_fits(spec.type, value):
        return None
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"field {spec.name!r} expects {spec.type.value}, got {type(value).__name__} {shown}"


def validate_schema(fields: Sequence[FieldSpec]) -> None:
    """Check a whole schema: 1..MAX_FIELDS fields and no two names equal ignoring case.

    Spark resolves column names case-insensitively, so ``Amount`` and ``amount`` would clash.
    """
    if not fields:
        raise SchemaError("a schema needs at least one field")
    if len(fields) > MAX_FIELDS:
        raise SchemaError(f"a schema has at most {MAX_FIELDS} fields ({len(fields)} given)")
    seen: dict[str, str] = {}
    for spec in fields:
        key = spec.name.lower()
        if key in seen:
            raise SchemaError(
                f"field {spec.name!r} duplicates field {seen[key]!r} "
                "(field names are compared ignoring case)",
                field=spec.name,
            )
        seen[key] = spec.name


def parse_schema(raw: Any) -> list[FieldSpec]:
    """Build and validate a schema from JSON data (a list of ``{name, type, nullable}`` objects)."""
    if not isinstance(raw, list):
        raise SchemaError("a schema is a list of fields")
    fields: list[FieldSpec] = []
    for index, item in enumerate(raw):
        try:
            fields.append(FieldSpec.model_validate(item))
        except ValidationError as exc:
            name = item.get("name") if isinstance(item, dict) else None
            reasons = [str(err["msg"]).removeprefix("Value error, ") for err in exc.errors()]
            label = f"field {name!r}" if isinstance(name, str) else f"field #{index + 1}"
            raise SchemaError(
                f"{label}: {'; '.join(reasons)}", field=name if isinstance(name, str) else None
            ) from None
    validate_schema(fields)
    return fields


def field_type_map(fields: Iterable[FieldSpec]) -> dict[str, FieldType]:
    """``{name: type}`` for a schema."""
    return {spec.name: spec.type for spec in fields}


def schema_change_problems(old: Sequence[FieldSpec], new: Sequence[FieldSpec]) -> list[str]:
    """Why replacing schema `old` by `new` would break stored data or running rules.

    An empty list means the change is compatible: every existing field is kept under the same
    name (exact case), with the same or a widened type (integer→long, integer→double,
    long→double, float→double), not turned from nullable to required; added fields are nullable
    (events already stored do not have them).
    """
    problems: list[str] = []
    new_by_key = {spec.name.lower(): spec for spec in new}
    old_keys = {spec.name.lower() for spec in old}
    for before in old:
        after = new_by_key.get(before.name.lower())
        if after is None:
            problems.append(
                f"field {before.name!r} was removed or renamed; existing fields must stay"
            )
            continue
        if after.name != before.name:
            problems.append(
                f"field {before.name!r} was renamed to {after.name!r}; names cannot change"
            )
        if after.type != before.type and (before.type, after.type) not in WIDENINGS:
            problems.append(
                f"field {before.name!r} cannot change type from {before.type.value} to "
                f"{after.type.value}; allowed: integer→long, integer→double, long→double, "
                "float→double"
            )
        if before.nullable and not after.nullable:
            problems.append(
                f"field {before.name!r} cannot become non-nullable (stored events may lack it)"
            )
    for spec in new:
        if spec.name.lower() not in old_keys and not spec.nullable:
            problems.append(
                f"new field {spec.name!r} must be nullable (events already stored do not have it)"
            )
    return problems


def default_key_field(fields: Iterable[FieldSpec]) -> str | None:
    """The event identity field when none is given: first required field named ``*_id``.

    None means the event id falls back to a hash of topic, partition and offset.
    """
    for spec in fields:
        if not spec.nullable and spec.name.lower().endswith("_id"):
            return spec.name
    return None
