"""Velocity rules as Spark batch window queries, against the plain-Python oracle."""

from __future__ import annotations

from datetime import timedelta

import pytest

from catalog.rules.velocity import WindowTerm
from streaming.parse import KAFKA_SCHEMA, parse_kafka, valid_events
from streaming.rules import Rule, evaluate
from streaming.schema import fields_of
from streaming.velocity_batch import velocity_events
from tests.velocity_oracle import accepted, expected_alerts, full_knowledge_alerts
from tests.velocity_streams import BASE, LATENESS_SECONDS, RULES, SCHEMA, generate, kafka_rows

pytestmark = pytest.mark.unit
FIELDS = fields_of(SCHEMA)


def archived(spark, events):
    """Bronze as the archive writes it, and the velocity path's ``late`` quarantine rows."""
    parsed = parse_kafka(spark.createDataFrame(kafka_rows(events, "t"), KAFKA_SCHEMA), FIELDS,
                         key_field="txn_id", schema_version=1)
    _, late = accepted(events, lateness_seconds=LATENESS_SECONDS, time_field="ts")
    quarantine = spark.createDataFrame(
        [(e.partition, e.offset, "late") for e in late] + [(9, 0, "invalid_json")],
        "kafka_partition int, kafka_offset long, reason string")
    return valid_events(parsed, FIELDS).cache(), quarantine


def hits(bronze, quarantine, case, since, until) -> set[tuple[int, str]]:
    rule = case.rule
    events = velocity_events(bronze, quarantine, FIELDS, rule, since, until)
    matched = evaluate(events, [Rule(case.id, rule.condition, "info", None, None, 1)])
    return {(case.id, r["_event_id"]) for r in matched.select("_event_id").collect()}


@pytest.mark.parametrize("seed", [11])
def test_backtest_query_equals_the_oracle(spark, seed):
    events = generate(seed, 120, prefix=f"s{seed}")
    bronze, quarantine = archived(spark, events)
    since, until = BASE - timedelta(days=1), BASE + timedelta(days=2)
    for case in RULES:
        rules = {case.id: (case.rule, case.predicate)}
        full = full_knowledge_alerts(events, rules, lateness_seconds=LATENESS_SECONDS)
        got = hits(bronze, quarantine, case, since, until)
        assert got == full, (case.expression, sorted(got ^ full))
        stream = expected_alerts(events, rules, lateness_seconds=LATENESS_SECONDS)
        assert got == stream if case.monotone else got <= stream


def test_a_range_sees_the_windows_before_it(spark):
    events = generate(13, 120, prefix="r")
    bronze, quarantine = archived(spark, events)
    kept, _ = accepted(events, lateness_seconds=LATENESS_SECONDS, time_field="ts")
    times = sorted(e.fields["ts"] for e in kept)
    since, until = times[len(times) // 3], times[2 * len(times) // 3]
    in_range = {e.event_id for e in kept if since <= e.fields["ts"] < until}
    for case in RULES[:3]:
        rules = {case.id: (case.rule, case.predicate)}
        want = {(r, e) for r, e in expected_alerts(events, rules,
                                                   lateness_seconds=LATENESS_SECONDS)
                if e in in_range}
        assert hits(bronze, quarantine, case, since, until) == want


def test_rule_terms_are_what_the_rules_say():
    assert RULES[2].rule.terms == (
        WindowTerm("count", "merchant", True, "account", "ts", 120, "_w0"),
        WindowTerm("max", "amount", False, "card_id", "ts", 60, "_w1"),
        WindowTerm("count", "card_id", False, "card_id", "ts", 60, "_w2"),
    )
