"""Field types: JSON value checks, schema validation, schema evolution, event identity."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from catalog.rules.field_types import (
    ALERT_ROW_COLUMNS,
    MAX_FIELDS,
    METADATA_COLUMNS,
    RESERVED_FIELD_NAMES,
    FieldSpec,
    FieldType,
    SchemaError,
    default_key_field,
    json_value_fits,
    parse_schema,
    schema_change_problems,
    validate_schema,
    value_problem,
)

pytestmark = pytest.mark.unit

T = FieldType


def spec(name: str, type_: FieldType = T.STRING, nullable: bool = True) -> FieldSpec:
    return FieldSpec(name=name, type=type_, nullable=nullable)


def test_spark_type_names() -> None:
    assert {t.value: t.spark_type_name for t in FieldType} == {
        "string": "string",
        "integer": "int",
        "long": "bigint",
        "float": "float",
        "double": "double",
        "boolean": "boolean",
        "timestamp": "timestamp",
        "date": "date",
    }


def test_metadata_columns() -> None:
    assert METADATA_COLUMNS["_event_id"] is T.STRING
    assert METADATA_COLUMNS["_kafka_offset"] is T.LONG
    assert METADATA_COLUMNS["_kafka_partition"] is T.INTEGER
    assert METADATA_COLUMNS["_ingested_at"] is T.TIMESTAMP
    assert all(name.startswith("_") for name in METADATA_COLUMNS)
    with pytest.raises(TypeError):
        METADATA_COLUMNS["x"] = T.STRING  # type: ignore[index]


FITS: list[tuple[FieldType, str]] = [
    (T.STRING, '"abc"'),
    (T.STRING, '""'),
    (T.INTEGER, "0"),
    (T.INTEGER, "-2147483648"),
    (T.INTEGER, "2147483647"),
    (T.LONG, "2147483648"),
    (T.LONG, "9223372036854775807"),
    (T.LONG, "-9223372036854775808"),
    (T.FLOAT, "1.5"),
    (T.FLOAT, "3"),
    (T.FLOAT, "-3.4e38"),
    (T.DOUBLE, "1e308"),
    (T.DOUBLE, "12"),
    (T.BOOLEAN, "true"),
    (T.BOOLEAN, "false"),
    (T.TIMESTAMP, '"2024-01-15T10:30:00Z"'),
    (T.TIMESTAMP, '"2024-01-15T10:30:00.123456789+05:30"'),
    (T.TIMESTAMP, '"2024-01-15 10:30:00"'),
    (T.TIMESTAMP, '"2024-01-15T10:30"'),
    (T.TIMESTAMP, '"2024-01-15T10:30:00-0800"'),
    (T.DATE, '"2024-02-29"'),
]

DOES_NOT_FIT: list[tuple[FieldType, str]] = [
    (T.STRING, "1"),
    (T.STRING, "null"),
    (T.INTEGER, "true"),  # bool is not an integer
    (T.INTEGER, "2147483648"),  # int32 overflow
    (T.INTEGER, "-2147483649"),
    (T.INTEGER, "1.0"),
    (T.INTEGER, '"1"'),
    (T.LONG, "9223372036854775808"),
    (T.LONG, "false"),
    (T.FLOAT, "3.5e38"),  # beyond float32
    (T.FLOAT, "NaN"),
    (T.FLOAT, '"1.5"'),
    (T.DOUBLE, "Infinity"),
    (T.DOUBLE, "-Infinity"),
    (T.DOUBLE, "NaN"),
    (T.DOUBLE, "true"),
    (T.DOUBLE, "1" + "0" * 400),  # an int too big for a double
    (T.BOOLEAN, "1"),
    (T.BOOLEAN, '"true"'),
    (T.TIMESTAMP, "1700000000"),  # epoch numbers are not accepted
    (T.TIMESTAMP, '"2024-01-15"'),
    (T.TIMESTAMP, '"2024-13-01T00:00:00"'),
    (T.TIMESTAMP, '"2024-01-15T25:00:00"'),
    (T.TIMESTAMP, '"yesterday"'),
    (T.TIMESTAMP, '"2024-01-15T10:30:00 UTC"'),
    (T.DATE, '"2023-02-29"'),
    (T.DATE, '"2024-1-5"'),
    (T.DATE, '"2024-01-15T00:00:00"'),
    (T.DATE, "20240115"),
]


@pytest.mark.parametrize(("field_type", "raw"), FITS)
def test_json_values_that_fit(field_type: FieldType, raw: str) -> None:
    assert json_value_fits(field_type, json.loads(raw))


@pytest.mark.parametrize(("field_type", "raw"), DOES_NOT_FIT)
def test_json_values_that_do_not_fit(field_type: FieldType, raw: str) -> None:
    assert not json_value_fits(field_type, json.loads(raw))


def test_value_problem() -> None:
    amount = spec("amount", T.FLOAT, nullable=False)
    assert value_problem(amount, 12.5) is None
    assert value_problem(amount, None) == "field 'amount' is required but null or missing"
    problem = value_problem(amount, "abc")
    assert problem is not None and "expects float" in problem and "'abc'" in problem
    assert value_problem(spec("note"), None) is None
    long_problem = value_problem(amount, "y" * 500)
    assert long_problem is not None and len(long_problem) < 100


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("_secret", "reserved for metadata columns"),
        ("_event_id", "reserved for metadata columns"),
        ("1abc", "not valid"),
        ("has space", "not valid"),
        ("semi;colon", "not valid"),
        ("", "not valid"),
        ("a" * 129, "not valid"),
        ("event_date", "reserved"),
        ("Event_Date", "reserved"),
        ("amount\n", "not valid"),
        ("severity", "reserved (alert column)"),
        ("Score", "reserved (alert column)"),
        ("rule_version", "reserved (alert column)"),
    ],
)
def test_invalid_field_names(name: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        FieldSpec(name=name, type=T.STRING)
    assert fragment in str(info.value)


def test_valid_field_spec() -> None:
    field = FieldSpec.model_validate({"name": "Amount_2", "type": "double"})
    assert field.type is T.DOUBLE and field.nullable is True
    assert FieldSpec(name="a" * 128, type=T.LONG).name == "a" * 128
    with pytest.raises(ValidationError):
        FieldSpec.model_validate({"name": "x", "type": "decimal"})
    with pytest.raises(ValidationError):
        FieldSpec.model_validate({"name": "x", "type": "string", "extra": 1})


def test_validate_schema() -> None:
    validate_schema([spec("transaction_id", nullable=False), spec("amount", T.FLOAT)])
    with pytest.raises(SchemaError, match="at least one field"):
        validate_schema([])
    with pytest.raises(SchemaError) as info:
        validate_schema([spec("amount"), spec("currency"), spec("Amount")])
    assert info.value.field == "Amount"
    assert "duplicates field 'amount'" in info.value.message
    validate_schema([spec(f"f{i}") for i in range(MAX_FIELDS)])
    with pytest.raises(SchemaError, match="at most"):
        validate_schema([spec(f"f{i}") for i in range(MAX_FIELDS + 1)])


def test_parse_schema() -> None:
    fields = parse_schema(
        [
            {"name": "order_id", "type": "string", "nullable": False},
            {"name": "amount", "type": "float", "nullable": False},
            {"name": "buyer_ip", "type": "string", "nullable": True},
        ]
    )
    assert [f.name for f in fields] == ["order_id", "amount", "buyer_ip"]
    bad: list[Any] = [{"name": "ok", "type": "string"}, {"name": "_x", "type": "string"}]
    with pytest.raises(SchemaError) as info:
        parse_schema(bad)
    assert info.value.field == "_x" and "reserved for metadata" in info.value.message
    with pytest.raises(SchemaError, match="field #1"):
        parse_schema([{"type": "string"}])
    with pytest.raises(SchemaError, match="'amount'.*Input should be"):
        parse_schema([{"name": "amount", "type": "money"}])
    with pytest.raises(SchemaError, match="is a list"):
        parse_schema({"name": "x"})
    with pytest.raises(SchemaError, match="duplicates"):
        parse_schema([{"name": "a", "type": "string"}, {"name": "A", "type": "long"}])


OLD = [
    spec("transaction_id", nullable=False),
    spec("amount", T.FLOAT, nullable=False),
    spec("points", T.INTEGER),
    spec("note"),
]


def test_compatible_schema_changes() -> None:
    assert schema_change_problems(OLD, OLD) == []
    widened = [
        spec("transaction_id", nullable=False),
        spec("amount", T.DOUBLE, nullable=True),  # float→double, required→nullable
        spec("points", T.LONG),
        spec("note"),
        spec("country"),  # new nullable field
    ]
    assert schema_change_problems(OLD, widened) == []
    assert schema_change_problems([spec("n", T.INTEGER)], [spec("n", T.DOUBLE)]) == []
    assert schema_change_problems([spec("n", T.LONG)], [spec("n", T.DOUBLE)]) == []
    # order does not matter
    assert schema_change_problems(OLD, list(reversed(OLD))) == []


@pytest.mark.parametrize(
    ("new", "fragment"),
    [
        (OLD[:3], "'note' was removed or renamed"),
        ([*OLD[:3], spec("memo")], "'note' was removed or renamed"),
        ([*OLD[:3], spec("Note")], "renamed to 'Note'"),
        ([OLD[0], spec("amount", T.INTEGER, False), *OLD[2:]], "from float to integer"),
        ([OLD[0], spec("amount", T.STRING, False), *OLD[2:]], "from float to string"),
        ([*OLD[:2], spec("points", T.FLOAT), OLD[3]], "from integer to float"),
        ([*OLD[:3], spec("note", nullable=False)], "'note' cannot become non-nullable"),
        ([*OLD, spec("country", nullable=False)], "new field 'country' must be nullable"),
    ],
)
def test_incompatible_schema_changes(new: list[FieldSpec], fragment: str) -> None:
    problems = schema_change_problems(OLD, new)
    assert len(problems) == 1
    assert fragment in problems[0]


def test_every_problem_is_reported() -> None:
    new = [spec("transaction_id", T.LONG, nullable=False), spec("extra", nullable=False)]
    assert len(schema_change_problems(OLD, new)) == 5


def test_default_key_field() -> None:
    assert default_key_field(OLD) == "transaction_id"
    fields = [spec("user_id"), spec("amount", T.FLOAT, False), spec("order_ID", nullable=False)]
    assert default_key_field(fields) == "order_ID"  # user_id is nullable
    assert default_key_field([spec("sensor", nullable=False), spec("temp", T.FLOAT)]) is None
    assert default_key_field([spec("paid", nullable=False)]) is None


def test_every_alert_column_but_the_event_time_is_reserved() -> None:
    from streaming.alerts import ALERT_COLUMNS

    # event_time is the alert's copy of the event's own time field, which may be named so.
    assert set(ALERT_COLUMNS) - {"event_time"} == ALERT_ROW_COLUMNS
    assert ALERT_ROW_COLUMNS <= RESERVED_FIELD_NAMES
    assert FieldSpec(name="event_time", type=T.TIMESTAMP).name == "event_time"
