"""Velocity rules: which window terms a rule may hold, how they are refused, how they split."""

from __future__ import annotations

import pytest

from catalog.rules.field_types import FieldSpec, FieldType
from catalog.rules.validator import RuleValidationError, validate_rule
from catalog.rules.velocity import (
    VelocityRule,
    WindowTerm,
    is_velocity,
    split_velocity,
    velocity_rule,
)

pytestmark = pytest.mark.unit

T = FieldType
SCHEMA = [
    FieldSpec(name="txn_id", type=T.STRING, nullable=False),
    FieldSpec(name="account", type=T.STRING, nullable=False),
    FieldSpec(name="card_id", type=T.LONG),
    FieldSpec(name="amount", type=T.DOUBLE, nullable=False),
    FieldSpec(name="qty", type=T.INTEGER),
    FieldSpec(name="merchant", type=T.STRING),
    FieldSpec(name="ts", type=T.TIMESTAMP, nullable=False),
    FieldSpec(name="booked_at", type=T.TIMESTAMP),
    FieldSpec(name="day", type=T.DATE),
    FieldSpec(name="is_online", type=T.BOOLEAN),
]
W5 = "OVER (PARTITION BY account ORDER BY ts RANGE BETWEEN INTERVAL 5 MINUTES PRECEDING AND " \
     "CURRENT ROW)"


def over(partition: str = "account", order: str = "ts", frame: str | None = None) -> str:
    frame = frame or "RANGE BETWEEN INTERVAL 5 MINUTES PRECEDING AND CURRENT ROW"
    return f"OVER (PARTITION BY {partition} ORDER BY {order} {frame})"


ACCEPTED = [
    f"count(*) {W5} >= 3",
    "sum(amount) OVER (PARTITION BY card_id ORDER BY ts RANGE BETWEEN INTERVAL 10 MINUTES "
    "PRECEDING AND CURRENT ROW) > 2000 AND amount > 100",
    f"count(merchant) {W5} > 1",
    f"count(DISTINCT merchant) {W5} >= 3",
    f"avg(amount) {W5} > 2 * amount",
    f"min(qty) {W5} < 0 OR max(amount) {W5} > 10",
    f"max(booked_at) {W5} > ts",
    f"count(*) {over(frame='RANGE BETWEEN INTERVAL 24 HOURS PRECEDING AND CURRENT ROW')} > 9",
    f"count(*) {over(frame='RANGE BETWEEN INTERVAL 1 DAY PRECEDING AND CURRENT ROW')} > 9",
    "count(*) " + over(frame="RANGE BETWEEN INTERVAL '30' SECONDS PRECEDING AND CURRENT ROW")
    + " > 9",
    f"count(*) {over(partition='is_online', order='booked_at')} > 1",
    f"CASE WHEN count(*) {W5} > 3 THEN true ELSE is_online END",
    f"NOT (count(*) {W5} < 3) AND merchant LIKE 'x%'",
]


@pytest.mark.parametrize("expression", ACCEPTED)
def test_allowed_window_terms_are_accepted(expression: str) -> None:
    rule = validate_rule(expression, SCHEMA)
    assert "OVER" in rule.normalized
    assert validate_rule(rule.normalized, SCHEMA).normalized == rule.normalized
    assert is_velocity(rule.normalized) and is_velocity(expression)


# (expression, what the message says, the text the position must point at)
REFUSED = [
    (f"count(*) {over(frame='ROWS BETWEEN 5 PRECEDING AND CURRENT ROW')} >= 3",
     "ROWS frames are not allowed", "ROWS"),
    (f"count(*) {over(frame='RANGE BETWEEN INTERVAL 5 MINUTES PRECEDING AND INTERVAL 1 MINUTE FOLLOWING')} > 1",  # noqa: E501
     "FOLLOWING is not allowed", "FOLLOWING"),
    (f"count(*) {over(frame='RANGE BETWEEN INTERVAL 5 MINUTES FOLLOWING AND CURRENT ROW')} > 1",
     "FOLLOWING is not allowed", "FOLLOWING"),
    (f"count(*) {over(frame='RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW')} > 1",
     "must start at INTERVAL n unit PRECEDING", "RANGE"),
    (f"count(*) {over(frame='RANGE INTERVAL 5 MINUTES PRECEDING')} > 1",
     "must end at the current event", "RANGE"),
    (f"count(*) {over(frame='RANGE BETWEEN INTERVAL 2 DAYS PRECEDING AND CURRENT ROW')} > 1",
     "longer than the allowed maximum of 86400 seconds", "INTERVAL"),
    (f"count(*) {over(frame='RANGE BETWEEN INTERVAL 0 MINUTES PRECEDING AND CURRENT ROW')} > 1",
     "must be positive", "INTERVAL"),
    (f"count(*) {over(frame='RANGE BETWEEN INTERVAL 1.5 HOURS PRECEDING AND CURRENT ROW')} > 1",
     "whole number of SECONDS, MINUTES, HOURS or DAYS", "INTERVAL"),
    ("count(*) OVER (PARTITION BY account ORDER BY ts) > 1", "needs the frame RANGE BETWEEN",
     "OVER"),
    ("count(*) OVER (PARTITION BY account RANGE BETWEEN INTERVAL 5 MINUTES PRECEDING AND "
     "CURRENT ROW) > 1", "needs ORDER BY a timestamp field", "OVER"),
    ("count(*) OVER (ORDER BY ts RANGE BETWEEN INTERVAL 5 MINUTES PRECEDING AND CURRENT ROW) > 1",
     "needs PARTITION BY one field", "OVER"),
    (f"count(*) {over(partition='account, card_id')} > 1", "exactly one field", "card_id"),
    (f"count(*) {over(order='amount')} > 1", "ORDER BY 'amount' is double",
     "amount RANGE"),
    (f"count(*) {over(order='day')} > 1", "a window is ordered by a timestamp field", "day"),
    (f"count(*) {over(order='ts DESC')} > 1", "remove DESC", "DESC"),
    (f"count(*) {over(order='ts, booked_at')} > 1", "exactly one timestamp field",
     "booked_at"),
    (f"count(*) {over(partition='acount')} > 1", "unknown field 'acount'", "acount"),
    (f"sum(amont) {W5} > 1", "unknown field 'amont'", "amont"),
    (f"count(*) {over(order='tss')} > 1", "unknown field 'tss'", "tss"),
    (f"count(*) {over(partition='upper(account)')} > 1",
     "PARTITION BY must be a field of the pipeline's schema", "upper"),
    (f"count(*) {over(partition='_kafka_partition')} > 1", "not the metadata column",
     "_kafka_partition"),
    (f"sum(merchant) {W5} > 1", "needs a numeric field; 'merchant' is string", "merchant)"),
    (f"min(day) {W5} IS NULL", "needs a numeric or timestamp field", "day)"),
    (f"sum(amount * 2) {W5} > 1", "argument of sum must be a field", "amount * 2"),
    (f"sum(DISTINCT amount) {W5} > 1", "DISTINCT is only allowed in count(DISTINCT x)", "sum"),
    (f"row_number() {W5} = 1", "'row_number' cannot be used over a window", "row_number"),
    (f"amount > 1 AND stddev(amount) {W5} > 1", "'stddev' cannot be used over a window",
     "stddev"),
    (f"amount > 1 AND first_value(amount) {W5} > 1", "cannot be used over a window",
     "first_value"),
    (f"count_if(amount > 1) {W5} > 1", "cannot be used over a window", "count_if"),
    (f"lag(amount) {W5} > 1", "cannot be used over a window", "lag"),
    (f"amount > 1 AND percentile(amount, 0.5) {W5} > 1", "'percentile' cannot be used",
     "percentile"),
    (f"count(*) IGNORE NULLS {W5} > 1", "cannot be used over a window", "count"),
    (f"count(*) {over(frame='RANGE BETWEEN INTERVAL 99999999999999999999 DAYS PRECEDING AND CURRENT ROW')} > 1",  # noqa: E501
     "longer than the allowed maximum", "INTERVAL"),
    (f"count(*) {over(frame='GROUPS BETWEEN 1 PRECEDING AND CURRENT ROW')} > 1",
     "GROUPS frames are not allowed", "GROUPS"),
    (f"count(*) {over(partition='(account)')} > 1", "PARTITION BY must be a field", "account)"),
    (f"sum(count(*) {W5}) > 3", "cannot be inside the aggregate function 'sum'", "sum"),
    (f"sum(count(*) {W5}) {W5} > 3", "window terms cannot be nested", f"OVER (PARTITION BY account ORDER BY ts RANGE BETWEEN INTERVAL 5 MINUTES PRECEDING AND CURRENT ROW)) {W5}"),  # noqa: E501
    ("count(*) OVER w > 3", "must be written out in full", "OVER"),
    (f"count(*) {W5}", "must be a condition that is true or false", "count"),
    (f"amount > 1 AND count(*) {over(frame='ROWS BETWEEN 5 PRECEDING AND CURRENT ROW')} > 1",
     "ROWS frames", "ROWS"),
    ("count(*) > 3", "aggregate function 'count' is not allowed", "count"),
]


@pytest.mark.parametrize(("expression", "says", "at"), REFUSED)
def test_other_window_terms_are_refused_with_what_and_where(expression: str, says: str,
                                                            at: str) -> None:
    with pytest.raises(RuleValidationError) as info:
        validate_rule(expression, SCHEMA)
    error = info.value
    assert says in error.message
    assert error.position == expression.index(at), (error.message, expression[error.position:])
    assert f"(at position {error.position})" in error.message


def test_second_window_refused_where_it_is() -> None:
    """Positions point into the window term that is wrong, not the first one of the rule."""
    bad = over(frame="ROWS BETWEEN 5 PRECEDING AND CURRENT ROW")
    expression = f"count(*) {W5} > 1 AND count(*) {bad} > 2"
    with pytest.raises(RuleValidationError) as info:
        validate_rule(expression, SCHEMA)
    assert info.value.position == expression.index("ROWS")


def test_leading_blanks_shift_the_position() -> None:
    expression = f"  count(*) {over(frame='ROWS BETWEEN 5 PRECEDING AND CURRENT ROW')} > 1"
    with pytest.raises(RuleValidationError) as info:
        validate_rule(expression, SCHEMA)
    assert info.value.position == expression.index("ROWS")


def test_maximum_window_is_a_parameter() -> None:
    hour = f"count(*) {over(frame='RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW')} > 1"
    validate_rule(hour, SCHEMA, max_window_seconds=3600)
    with pytest.raises(RuleValidationError) as info:
        validate_rule(hour, SCHEMA, max_window_seconds=3599)
    assert "maximum of 3599 seconds" in info.value.message
    assert info.value.position == hour.index("INTERVAL")
    with pytest.raises(RuleValidationError):
        velocity_rule(hour, SCHEMA, max_window_seconds=60)


def test_velocity_rule_splits_terms_and_condition() -> None:
    w300 = over(frame="RANGE BETWEEN INTERVAL 300 SECONDS PRECEDING AND CURRENT ROW")
    expression = (f"count(*) {W5} >= 3 AND (COUNT(*) {w300} < 10 OR "
                  f"count(DISTINCT merchant) {over(partition='card_id')} > 2) "
                  f"AND max(amount) OVER (PARTITION BY account ORDER BY booked_at RANGE BETWEEN "
                  f"INTERVAL 2 HOURS PRECEDING AND CURRENT ROW) > amount")
    rule = velocity_rule(expression, SCHEMA)
    assert rule == VelocityRule(
        terms=(
            WindowTerm("count", None, False, "account", "ts", 300, "_w0"),
            WindowTerm("count", "merchant", True, "card_id", "ts", 300, "_w1"),
            WindowTerm("max", "amount", False, "account", "booked_at", 7200, "_w2"),
        ),
        condition="_w0 >= 3 AND (_w0 < 10 OR _w1 > 2) AND _w2 > amount",
    )


def test_velocity_rule_uses_the_schema_spelling() -> None:
    rule = velocity_rule("SUM(Amount) OVER (PARTITION BY ACCOUNT ORDER BY Ts RANGE BETWEEN "
                         "INTERVAL '10' MINUTE PRECEDING AND CURRENT ROW) > 2000 AND AMOUNT > 1",
                         SCHEMA)
    assert rule is not None
    assert rule.terms == (WindowTerm("sum", "amount", False, "account", "ts", 600, "_w0"),)
    assert rule.condition == "_w0 > 2000 AND amount > 1"


def test_ordinary_rules_are_not_velocity_rules() -> None:
    assert velocity_rule("amount > 5 AND merchant = 'over'", SCHEMA) is None
    assert not is_velocity("amount > 5 AND merchant = 'game OVER'")
    assert not is_velocity("amount > 5")
    with pytest.raises(RuleValidationError):
        velocity_rule("amount >", SCHEMA)


def test_split_velocity_keeps_order() -> None:
    rules = ["amount > 1", f"count(*) {W5} > 3", "qty > 2", f"sum(amount) {W5} > 9"]
    assert split_velocity(rules) == ([rules[0], rules[2]], [rules[1], rules[3]])
    pairs = [(1, rules[1]), (2, rules[0])]
    assert split_velocity(pairs, lambda p: p[1]) == ([pairs[1]], [pairs[0]])
