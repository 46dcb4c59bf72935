"""The pure parts of backtests: the event-time range, the results, the error text."""

from __future__ import annotations

import datetime as dt

import pytest

from streaming.backtest import summarize
from streaming.backtest_jobs import MAX_ERROR, describe
from streaming.pinned import event_time, in_range
from streaming.schema import fields_of

pytestmark = pytest.mark.unit

UTC = dt.UTC
WITH_TIME = fields_of([
    {"name": "id", "type": "string", "nullable": False},
    {"name": "event_time", "type": "timestamp", "nullable": True},
])
WITHOUT_TIME = fields_of([{"name": "id", "type": "string", "nullable": False}])
KAFKA = dt.datetime(2026, 3, 2, 8, 0)


def _events(spark, rows):
    """Bronze-shaped rows: (id, event_time or None); event_date as the stream derives it."""
    data = [(i, t, KAFKA, (t or KAFKA).date()) for i, t in rows]
    return spark.createDataFrame(
        data, "id string, event_time timestamp, _kafka_timestamp timestamp, event_date date")


def test_range_is_half_open_on_event_time_with_kafka_time_as_fallback(spark):
    rows = [
        ("before", dt.datetime(2026, 3, 1, 23, 59, 59, 999999)),
        ("at_since", dt.datetime(2026, 3, 2, 0, 0)),
        ("inside", dt.datetime(2026, 3, 2, 12, 30)),
        ("at_until", dt.datetime(2026, 3, 3, 0, 0)),
        ("no_time", None),  # falls back to the Kafka timestamp (2026-03-02 08:00)
    ]
    since = dt.datetime(2026, 3, 2, tzinfo=UTC)
    until = dt.datetime(2026, 3, 3, tzinfo=UTC)
    got = {r["id"] for r in in_range(_events(spark, rows), WITH_TIME, since, until).collect()}
    assert got == {"at_since", "inside", "no_time"}


def test_range_bounds_in_other_offsets_are_the_same_instants(spark):
    rows = [("a", dt.datetime(2026, 3, 2, 9, 0)), ("b", dt.datetime(2026, 3, 2, 11, 0))]
    tz = dt.timezone(dt.timedelta(hours=2))
    since = dt.datetime(2026, 3, 2, 10, 0, tzinfo=tz)  # 08:00 UTC
    until = dt.datetime(2026, 3, 2, 12, 0, tzinfo=tz)  # 10:00 UTC
    got = [r["id"] for r in in_range(_events(spark, rows), WITH_TIME, since, until).collect()]
    assert got == ["a"]


def test_without_a_time_field_the_kafka_timestamp_is_the_event_time(spark):
    df = _events(spark, [("x", dt.datetime(2020, 1, 1))]).drop("event_time")
    (row,) = df.select(event_time(WITHOUT_TIME).alias("t")).collect()
    assert row["t"] == KAFKA


def test_summarize_counts_rates_and_overlap_shares():
    overlap = [{"rule_id": 1, "alerts": 10, "shared": 3}, {"rule_id": 2, "alerts": 0,
                                                           "shared": 0}]
    res = summarize(200, {"2026-03-02": 4, "2026-03-01": 2}, 5, [{"event_id": "e"}], overlap)
    assert res["events_scanned"] == 200 and res["hits"] == 6
    assert res["hit_rate"] == pytest.approx(0.03)
    assert list(res["hits_per_day"]) == ["2026-03-01", "2026-03-02"]
    assert res["distinct_hit_event_ids"] == 5
    assert [o["shared_share_of_hits"] for o in res["overlap"]] == [pytest.approx(0.5), 0.0]


def test_summarize_of_nothing_has_no_division_by_zero():
    res = summarize(0, {}, 0, [], [{"rule_id": 1, "alerts": 0, "shared": 0}])
    assert (res["hits"], res["hit_rate"], res["overlap"][0]["shared_share_of_hits"]) == (0, 0.0,
                                                                                        0.0)


def test_errors_are_short_and_say_what_failed():
    exc = RuntimeError("[UNRESOLVED_COLUMN] no_such_col cannot be resolved\n\tat org.Foo\n"
                       + "x" * 5000)
    text = describe(exc)
    assert text.startswith("RuntimeError: [UNRESOLVED_COLUMN] no_such_col")
    assert "org.Foo" not in text and len(text) <= MAX_ERROR
    assert describe(KeyboardInterrupt()) == "KeyboardInterrupt: KeyboardInterrupt()"
