"""The pipeline's velocity rules compiled for the stateful query: one set of window terms for
all rules (a term shared by two rules is computed once), grouped by key field, each rule's
condition rewritten onto those shared columns, and the few fields the state must keep.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pyspark.sql.types import TimestampNTZType, TimestampType
from sqlglot import exp

from catalog.rules.field_types import parse_schema
from catalog.rules.tokens import DIALECT
from catalog.rules.velocity import VelocityRule, velocity_rule
from streaming.rules import Rule
from streaming.schema import Field, event_time_field
from streaming.velocity_state import Term

log = logging.getLogger(__name__)
KAFKA_TS = "_kafka_timestamp"  # kept with each event: a new rule version's guard reads it


@dataclass(frozen=True)
class CompiledRule:
    """A velocity rule as the query evaluates it: ``rule.expression`` is its condition over
    the event's fields and the shared term columns (``_v0``, ``_v1``, ...)."""

    rule: Rule
    velocity: VelocityRule


@dataclass
class Compiled:
    """Everything the velocity query needs to know about its rules."""

    rules: list[CompiledRule] = field(default_factory=list)
    terms: dict[str, list[Term]] = field(default_factory=dict)  # key field → its terms
    kept: list[str] = field(default_factory=list)  # fields the state keeps per event
    time_fields: list[str] = field(default_factory=list)  # the kept timestamp fields
    lateness_field: str | None = None
    errors: dict[Rule, str] = field(default_factory=dict)

    @property
    def key_fields(self) -> list[str]:
        return sorted(self.terms)

    @property
    def columns(self) -> list[str]:
        return [t.column for terms in self.terms.values() for t in terms]


def _rename(condition: str, names: dict[str, str]) -> str:
    """``condition`` with its term columns (``_w0``...) renamed (parsed, not text-replaced)."""
    tree = DIALECT.parse(condition)[0]
    assert tree is not None

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in names:
            return exp.column(names[node.name])
        return node

    return tree.transform(swap).sql(dialect="spark")


def referenced_fields(condition: str, fields: Sequence[Field]) -> list[str]:
    """The schema fields a condition may read (a name that appears as a word: a superset)."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", condition))
    return [f.name for f in fields if f.name in words]


def compile_rules(rules: Sequence[Rule], schema: list[dict], fields: Sequence[Field],
                  *, max_window_seconds: int | None = None) -> Compiled:
    """Split ``rules`` into terms and conditions; a rule that does not parse (or has no window
    term) is returned in ``errors`` instead."""
    specs = parse_schema(schema)
    out = Compiled()
    shared: dict[tuple, str] = {}
    kept: set[str] = set()
    orders: set[str] = set()
    for rule in rules:
        try:
            parsed = velocity_rule(rule.expression, specs, max_window_seconds=max_window_seconds)
        except Exception as exc:  # the validator's refusal: the rule cannot run
            out.errors[rule] = f"{type(exc).__name__}: {exc}"[:2000]
            continue
        if parsed is None:
            out.errors[rule] = "not a velocity rule"
            continue
        names: dict[str, str] = {}
        for term in parsed.terms:
            shape = (term.partition_by, term.function, term.argument, term.distinct,
                     term.order_by, term.window_seconds)
            if shape not in shared:
                shared[shape] = f"_v{len(shared)}"
                out.terms.setdefault(term.partition_by, []).append(
                    Term.of(replace(term, column=shared[shape])))
            names[term.column] = shared[shape]
            kept.add(term.order_by)
            orders.add(term.order_by)
            if term.argument:
                kept.add(term.argument)
        condition = _rename(parsed.condition, names)
        kept.update(referenced_fields(condition, fields))
        terms = tuple(replace(t, column=names[t.column]) for t in parsed.terms)
        out.rules.append(CompiledRule(replace(rule, expression=condition),
                                      VelocityRule(terms, condition)))
    out.kept = sorted(kept)
    out.time_fields = [f.name for f in fields if f.name in kept
                       and isinstance(f.spark_type, TimestampType | TimestampNTZType)]
    out.lateness_field = lateness_field(orders, fields)
    return out


def lateness_field(orders: set[str], fields: Sequence[Field]) -> str | None:
    """The time the lateness rule reads: the pipeline's event time when a term orders by it,
    else the first ordering field by name."""
    main = event_time_field(fields)
    if main in orders:
        return main
    return min(orders) if orders else None

