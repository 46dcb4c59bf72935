"""Naming, quoting and SQL generation of the lakehouse tables and views (no services)."""

from __future__ import annotations

import pytest

from orchestration.lake.views import (
    EVENT_COLUMNS,
    PipelineRow,
    assign_slugs,
    desired_tables,
    event_select,
    event_time_column,
    quote_ident,
    slugify,
    sql_string,
    union_sql,
)
from streaming.pipeline import Paths
from streaming.schema import event_time_field, fields_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "slug"), [
    ("Payments", "payments"),
    ("IoT sensors / EU-West", "iot_sensors_eu_west"),
    ("crypto-withdrawals", "crypto_withdrawals"),
    ("2024 cards", "p_2024_cards"),
    ("Zürich Kärtchen", "zurich_kartchen"),
    ("';drop schema bronze cascade;--", "drop_schema_bronze_cascade"),
    ("!!!", "pipeline"),
    ("x" * 300, "x" * 48),
])
def test_slugify_is_sql_safe(name: str, slug: str) -> None:
    assert slugify(name) == slug
    quote_ident(slug + "_events")  # never raises


def test_colliding_names_get_the_id_and_the_lowest_id_keeps_the_bare_slug() -> None:
    slugs = assign_slugs([(7, "Pay-ments"), (3, "pay ments"), (9, "all"), (4, "pay_ments_7")])
    assert slugs == {3: "pay_ments", 4: "pay_ments_7", 7: "pay_ments_7_7", 9: "all_9"}
    assert len(set(slugs.values())) == 4


@pytest.mark.parametrize("bad", ["a`b", "x y", "", "1abc", "a;b", "é"])
def test_quote_ident_refuses_unsafe_names(bad: str) -> None:
    with pytest.raises(ValueError):
        quote_ident(bad)


def test_sql_string_escapes_quotes_and_backslashes() -> None:
    assert sql_string("it's") == "'it\\'s'"
    assert sql_string("a\\' or 1=1 --") == "'a\\\\\\' or 1=1 --'"
    assert sql_string("two\nlines") == "'two\\nlines'"


def test_tables_point_at_the_stream_paths() -> None:
    p = PipelineRow(5, "Card Payments", "transaction_id", [], 1)
    tables = {t.kind: t for t in desired_tables([p], "s3a://bucket", prefix="it_")}
    paths = Paths("s3a://bucket", "pipeline_5")
    assert tables["events"].location == paths.events
    assert tables["quarantine"].location == paths.quarantine
    assert tables["alerts"].location == paths.alerts
    assert tables["events"].qualified == "`it_bronze`.`card_payments_events`"
    assert tables["alerts"].qualified == "`it_silver`.`card_payments_alerts`"


SCHEMAS = [
    [{"name": "id", "type": "string"}, {"name": "created_time", "type": "timestamp"},
     {"name": "ts", "type": "timestamp"}],
    [{"name": "id", "type": "string"}, {"name": "paid_timestamp", "type": "timestamp"}],
    [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}],
    [{"name": "Event_Time", "type": "timestamp"}, {"name": "x_time", "type": "string"}],
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_event_time_matches_the_stream(schema: list[dict]) -> None:
    spark_names = {"timestamp": "timestamp", "string": "string", "double": "double"}
    columns = [(f["name"], spark_names[f["type"]]) for f in schema]
    columns += [("_kafka_timestamp", "timestamp"), ("_ingested_at", "timestamp")]
    assert event_time_column(columns) == event_time_field(fields_of(schema))


def test_event_view_select_uses_key_time_and_payload() -> None:
    schema = [{"name": "transaction_id", "type": "string", "nullable": False},
              {"name": "amount", "type": "double"}, {"name": "event_time", "type": "timestamp"}]
    p = PipelineRow(2, "it's payments", None, schema, 1)
    (t,) = [t for t in desired_tables([p], "/w") if t.kind == "events"]
    columns = [("transaction_id", "string"), ("amount", "double"), ("event_time", "timestamp"),
               ("_event_id", "string"), ("_kafka_timestamp", "timestamp"),
               ("event_date", "date")]
    sql = event_select(t, columns)
    assert "'it\\'s payments' as pipeline_name" in sql
    assert "cast(`transaction_id` as string) as key_value" in sql  # default key field
    assert "coalesce(cast(`event_time` as timestamp), `_kafka_timestamp`)" in sql
    assert "to_json(struct(`transaction_id`, `amount`, `event_time`))" in sql


def test_union_of_no_pipeline_is_a_typed_empty_view() -> None:
    sql = union_sql("events", [])
    assert sql.endswith("where false")
    for name, dtype in EVENT_COLUMNS:
        assert f"cast(null as {dtype}) as `{name}`" in sql
