"""Velocity rules: rules over the same entity's recent events, split into terms and a condition.

A velocity rule is an ordinary rule expression with window terms in it (checked by the
validator, see ``catalog.rules.windows``), e.g. ``sum(amount) OVER (PARTITION BY card_id ORDER
BY ts RANGE BETWEEN INTERVAL 10 MINUTES PRECEDING AND CURRENT ROW) > 2000 AND amount > 100``.
`velocity_rule` splits it into its `WindowTerm`s, each with a column name ``_w0``, ``_w1``, ...,
and the `condition`: the expression with each term replaced by its column, a plain Spark SQL
condition over the event's fields and those columns. The stateless detect path never runs a
velocity rule (`split_velocity`); the stateful velocity path and the backtests compute the
terms, then evaluate the condition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from catalog.rules.field_types import FieldSpec, FieldType
from catalog.rules.tokens import DIALECT
from catalog.rules.validator import RuleValidationError, validate_rule
from catalog.rules.windows import UNIT_SECONDS, WindowShape
from catalog.settings import get_settings

__all__ = [
    "RuleValidationError", "VelocityRule", "WindowTerm", "is_velocity", "split_velocity",
    "velocity_rule",
]  # fmt: skip

Function = Literal["count", "sum", "avg", "min", "max"]
T = TypeVar("T")


@dataclass(frozen=True)
class WindowTerm:
    """One aggregate over the entity's recent events, e.g. the count of an account's events in
    the last 5 minutes up to and including the current one."""

    function: Function
    argument: str | None  # schema field name; None only for count(*)
    distinct: bool  # count(DISTINCT x) (only with count)
    partition_by: str  # one schema field (the entity key)
    order_by: str  # a timestamp field of the schema (the event time)
    window_seconds: int  # RANGE BETWEEN INTERVAL n unit PRECEDING AND CURRENT ROW, in seconds
    column: str  # "_w0", "_w1", ... : the term's column in `VelocityRule.condition`


@dataclass(frozen=True)
class VelocityRule:
    """A velocity rule's window terms and its condition over fields and term columns."""

    terms: tuple[WindowTerm, ...]
    condition: str


def is_velocity(expression: str) -> bool:
    """Whether a (stored, validated) rule expression contains a window term."""
    if "over" not in expression.lower():
        return False
    try:
        tokens = DIALECT.tokenize(expression)
    except SqlglotError:
        return False
    return any(tok.token_type == TokenType.OVER for tok in tokens)


def split_velocity(rules: Iterable[T], expression: Callable[[T], str] = str
                   ) -> tuple[list[T], list[T]]:
    """``(stateless rules, velocity rules)``: the detect path runs only the former."""
    stateless: list[T] = []
    velocity: list[T] = []
    for rule in rules:
        (velocity if is_velocity(expression(rule)) else stateless).append(rule)
    return stateless, velocity


def velocity_rule(
    expression: str,
    schema: Mapping[str, FieldType] | Sequence[FieldSpec],
    *,
    max_window_seconds: int | None = None,
) -> VelocityRule | None:
    """The terms and condition of a velocity rule; None for an ordinary (stateless) rule.

    Validates the whole expression like any rule (raises `RuleValidationError`, the API's 422,
    with what and where). Identical terms share one column.
    """
    if max_window_seconds is None:
        max_window_seconds = get_settings().velocity_max_window_seconds
    rule = validate_rule(expression, schema, max_window_seconds=max_window_seconds)
    tree = DIALECT.parse(rule.normalized)[0]
    assert tree is not None  # the validator parsed and re-read this text
    windows = [node for node in tree.walk(bfs=False) if isinstance(node, exp.Window)]
    if not windows:
        return None
    columns: dict[WindowShape, str] = {}
    terms: list[WindowTerm] = []
    for window in windows:
        shape = window_shape(window)
        if shape not in columns:
            columns[shape] = f"_w{len(columns)}"
            terms.append(WindowTerm(
                cast(Function, shape.function), shape.argument, shape.distinct,
                shape.partition_by, shape.order_by, shape.window_seconds, columns[shape]))
        window.replace(exp.column(columns[shape]))
    return VelocityRule(tuple(terms), tree.sql(dialect="spark"))


def window_shape(window: exp.Window) -> WindowShape:
    """What a window term of a validated (normalized) rule computes."""
    func = window.this
    function = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min",
                exp.Max: "max"}[type(func)]
    value = func.this
    distinct = isinstance(value, exp.Distinct)
    if distinct:
        value = value.expressions[0]
    argument = value.name if isinstance(value, exp.Column) else None
    partition = window.args["partition_by"][0].name
    order = window.args["order"].expressions[0].this.name
    interval = window.args["spec"].args["start"]
    unit = interval.args["unit"].name.upper().removesuffix("S")
    seconds = int(interval.this.name) * UNIT_SECONDS[unit]
    return WindowShape(function, argument, distinct, partition, order, seconds)
