"""The velocity oracle on small streams worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalog.rules.field_types import FieldType
from catalog.rules.velocity import VelocityRule, WindowTerm, velocity_rule
from tests.velocity_oracle import (
    OracleEvent,
    accepted,
    aggregate,
    alert_log,
    expected_alerts,
    full_knowledge_alerts,
    term_values,
)

pytestmark = pytest.mark.unit

SCHEMA = {"account": FieldType.STRING, "merchant": FieldType.STRING,
          "amount": FieldType.DOUBLE, "ts": FieldType.TIMESTAMP}
BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rule(expression: str) -> VelocityRule:
    parsed = velocity_rule(expression, SCHEMA)
    assert parsed is not None
    return parsed


def over(seconds: int, key: str = "account") -> str:
    return (f"OVER (PARTITION BY {key} ORDER BY ts RANGE BETWEEN INTERVAL {seconds} SECONDS "
            "PRECEDING AND CURRENT ROW)")


COUNT2 = rule(f"count(*) {over(60)} >= 2")


def at_least(n: float) -> Any:
    return lambda fields, values: values["_w0"] is not None and values["_w0"] >= n


def ev(event_id: str, partition: int, offset: int, seconds: float | None, account: str | None = "A",
       amount: float | None = 1.0, merchant: str | None = "m") -> OracleEvent:
    ts = None if seconds is None else BASE + timedelta(seconds=seconds)
    return OracleEvent(event_id, partition, offset, {"account": account, "merchant": merchant,
                                                     "amount": amount, "ts": ts})


def alerts(events: list[OracleEvent], rules: dict[int, tuple[VelocityRule, Any]],
           lateness: float = 300) -> set[tuple[int, str]]:
    return expected_alerts(events, rules, lateness_seconds=lateness)


def test_equal_times_count_for_the_later_in_partition_offset_order() -> None:
    # all at t=10: order (10, p0, o0)=a < (10, p0, o1)=c < (10, p1, o0)=b; d alone on key B
    events = [ev("a", 0, 0, 10), ev("b", 1, 0, 10), ev("d", 2, 0, 10, "B"), ev("c", 0, 1, 10)]
    kept = accepted(events, lateness_seconds=300, time_field="ts")[0]
    counts = {e.event_id: term_values(e, kept, COUNT2)["_w0"] for e in kept}
    assert counts == {"a": 1, "c": 2, "b": 3, "d": 1}
    assert alerts(events, {1: (COUNT2, at_least(2))}) == {(1, "b"), (1, "c")}
    # b arrived before c, yet its window already held a: its alert is on its own arrival
    assert alert_log(events, {1: (COUNT2, at_least(2))}, lateness_seconds=300) == {
        (1, "b"): False, (1, "c"): False}


def test_window_edges_are_inclusive_and_exact() -> None:
    # W = 60 s: e2 at exactly 60 s holds e1 (0 s); e3 at 121 s does not hold e2 (60 s);
    # e4 at 181 s holds e3 (121 s = 181 - 60) but not e2
    events = [ev("e1", 0, 0, 0), ev("e2", 0, 1, 60), ev("e3", 0, 2, 121), ev("e4", 0, 3, 181)]
    assert alerts(events, {7: (COUNT2, at_least(2))}) == {(7, "e2"), (7, "e4")}
    late_by_a_microsecond = [ev("e1", 0, 0, 0), ev("e2", 0, 1, 60.000001)]
    assert alerts(late_by_a_microsecond, {7: (COUNT2, at_least(2))}) == set()


def test_duplicates_count_once() -> None:
    events = [ev("x", 0, 0, 0), ev("x", 0, 1, 1), ev("x", 1, 0, 2), ev("y", 1, 1, 30)]
    kept, late = accepted(events, lateness_seconds=300, time_field="ts")
    assert [(e.event_id, e.partition, e.offset) for e in kept] == [("x", 0, 0), ("y", 1, 1)]
    assert late == []
    assert alerts(events, {1: (COUNT2, at_least(2))}) == {(1, "y")}
    assert alerts(events, {1: (rule(f"count(*) {over(60)} >= 3"), at_least(3))}) == set()


def test_too_late_is_judged_per_partition_and_before_deduplication() -> None:
    # L = 30 s. p0: 100 s, then 50 s (< 100 - 30: too late), then 80 s (within lateness).
    # p1 starts at 50 s: nothing earlier in p1, so not late. The late copy of "z" is not
    # the event: its later copy in p1 is.
    events = [ev("a", 0, 0, 100), ev("z", 0, 1, 50), ev("b", 0, 2, 80), ev("c", 1, 0, 50),
              ev("z", 1, 1, 55)]
    kept, late = accepted(events, lateness_seconds=30, time_field="ts")
    assert [(e.event_id, e.partition) for e in kept] == [("a", 0), ("b", 0), ("c", 1), ("z", 1)]
    assert [(e.event_id, e.partition) for e in late] == [("z", 0)]
    # windows of 60 s: a (100) holds b (80), c (50) and z (55); b (80) holds c and z; c
    # holds nothing earlier; z holds c
    counts = {e.event_id: term_values(e, kept, COUNT2)["_w0"] for e in kept}
    assert counts == {"a": 4, "b": 3, "c": 1, "z": 2}
    assert alerts(events, {1: (COUNT2, at_least(3))}, lateness=30) == {(1, "a"), (1, "b")}


def test_a_late_record_only_counts_against_records_before_it() -> None:
    # 10 s, then 5 s later in the same partition is fine with L = 5; 4.9 s with L = 5 after 10
    events = [ev("a", 0, 0, 10), ev("b", 0, 1, 5), ev("c", 0, 2, 4.9)]
    kept, late = accepted(events, lateness_seconds=5, time_field="ts")
    assert [e.event_id for e in kept] == ["a", "b"] and [e.event_id for e in late] == ["c"]


def test_out_of_order_within_lateness_re_evaluates_earlier_events() -> None:
    # x (100 s) arrives first alone; y (90 s) arrives later and joins x's window: x alerts
    # then (late); y's own window does not hold x (later in time)
    events = [ev("x", 0, 0, 100), ev("y", 0, 1, 90)]
    assert alert_log(events, {3: (COUNT2, at_least(2))}, lateness_seconds=30) == {
        (3, "x"): True}


def test_non_monotone_alerts_are_never_withdrawn() -> None:
    avg = rule(f"avg(amount) {over(60)} > 50")
    over_50 = lambda fields, values: values["_w0"] is not None and values["_w0"] > 50  # noqa: E731
    # e1 (100) alerts on arrival with avg 100; e0 (0, earlier in time, within lateness) then
    # brings e1's average to 50: the alert stands, though full knowledge would not raise it
    events = [ev("e1", 0, 0, 10, amount=100), ev("e0", 0, 1, 0, amount=0)]
    assert alerts(events, {1: (avg, over_50)}) == {(1, "e1")}
    assert full_knowledge_alerts(events, {1: (avg, over_50)}, lateness_seconds=300) == set()
    # in time order the two agree
    in_order = [ev("e0", 0, 0, 0, amount=0), ev("e1", 0, 1, 10, amount=100)]
    assert alerts(in_order, {1: (avg, over_50)}) == set()


def test_monotone_union_equals_full_knowledge() -> None:
    events = [ev(f"e{i}", i % 3, i // 3, (i * 37) % 200, "AB"[i % 2], amount=float(i % 5))
              for i in range(40)]
    rules = {1: (COUNT2, at_least(3)),
             2: (rule(f"sum(amount) {over(90)} > 6"), at_least(6.5))}
    assert alerts(events, rules, lateness=1000) == full_knowledge_alerts(
        events, rules, lateness_seconds=1000)


def test_null_key_or_time_takes_part_in_no_window() -> None:
    events = [ev("a", 0, 0, 0), ev("n", 0, 1, 1, account=None), ev("t", 0, 2, None),
              ev("b", 0, 3, 2)]
    kept = accepted(events, lateness_seconds=300, time_field="ts")[0]
    values = {e.event_id: term_values(e, kept, COUNT2)["_w0"] for e in kept}
    assert values == {"a": 1, "n": None, "t": None, "b": 2}


def test_aggregates_are_sqls() -> None:
    rows = [ev("a", 0, 0, 0, amount=3, merchant="m1"), ev("b", 0, 1, 1, amount=None,
                                                          merchant="m1"),
            ev("c", 0, 2, 2, amount=-1, merchant=None)]

    def term(function: str, argument: str | None, distinct: bool = False) -> WindowTerm:
        return WindowTerm(function, argument, distinct, "account", "ts", 60, "_w0")  # type: ignore[arg-type]

    assert aggregate(rows, term("count", None)) == 3
    assert aggregate(rows, term("count", "amount")) == 2
    assert aggregate(rows, term("count", "merchant", True)) == 1
    assert aggregate(rows, term("sum", "amount")) == 2
    assert aggregate(rows, term("avg", "amount")) == 1
    assert aggregate(rows, term("min", "amount")) == -1
    assert aggregate(rows, term("max", "amount")) == 3
    assert aggregate(rows[1:2], term("sum", "amount")) is None
    assert aggregate(rows[1:2], term("count", "amount")) == 0
    assert aggregate(None, term("count", None)) is None


def test_terms_with_different_keys_in_one_rule() -> None:
    both = rule(f"count(*) {over(60)} >= 2 AND count(DISTINCT account) {over(60, 'merchant')} "
                ">= 2")
    holds = lambda f, v: (v["_w0"] or 0) >= 2 and (v["_w1"] or 0) >= 2  # noqa: E731
    events = [ev("a", 0, 0, 0, "A", merchant="m"), ev("b", 0, 1, 1, "B", merchant="m"),
              ev("c", 0, 2, 2, "A", merchant="m")]
    # c: account A holds a and c (2); merchant m holds accounts A and B (2)
    assert alerts(events, {5: (both, holds)}) == {(5, "c")}
