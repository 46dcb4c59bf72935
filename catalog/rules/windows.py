"""Window terms of velocity rules: what an ``OVER (...)`` may say, and what it means.

A velocity rule compares an aggregate over the same entity's recent events with a value, e.g.
``count(*) OVER (PARTITION BY account ORDER BY ts RANGE BETWEEN INTERVAL 5 MINUTES PRECEDING
AND CURRENT ROW) >= 3``. Allowed: ``count(*)``, ``count(x)``, ``count(DISTINCT x)``, ``sum``,
``avg``, ``min`` and ``max`` of one schema field, over exactly one ``PARTITION BY`` schema
field, ``ORDER BY`` one timestamp field (ascending) and the frame ``RANGE BETWEEN INTERVAL n
unit PRECEDING AND CURRENT ROW`` with 0 < n unit <= the configured maximum. Everything else is
refused with what and where.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.tokens import TokenType

from catalog.rules.field_types import METADATA_COLUMNS, FieldType
from catalog.rules.nodes import RuleContext, check_node
from catalog.rules.problems import Problem, clip, node_position

WINDOW_FUNCTIONS = ("count", "sum", "avg", "min", "max")
_CLASSES: dict[type[exp.Expr], str] = {
    exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
}  # fmt: skip
UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
FRAME = "RANGE BETWEEN INTERVAL n unit PRECEDING AND CURRENT ROW"
_ALLOWED = "count(*), count(x), count(DISTINCT x), sum(x), avg(x), min(x) and max(x)"


@dataclass(frozen=True)
class WindowShape:
    """What a checked window term computes (names in the schema's spelling)."""

    function: str
    argument: str | None
    distinct: bool
    partition_by: str
    order_by: str
    window_seconds: int


class _Refused(Exception):
    def __init__(self, message: str, token: str | None, position: int | None) -> None:
        super().__init__(message)
        self.problem: Problem = (message, token, position)


@dataclass
class _Span:
    """The tokens of one window term: its function name and its ``OVER (...)``."""

    ctx: RuleContext
    function_at: int | None
    over: int  # token index of OVER (or of the function when no OVER is found)
    close: int  # token index of the ``)`` that ends the OVER clause

    def find(self, *types: TokenType) -> int | None:
        """Where the first token of one of ``types`` in the OVER clause starts."""
        tokens = self.ctx.tokens[self.over : self.close + 1]
        return next((tok.start for tok in tokens if tok.token_type in types), None)

    def find_word(self, word: str) -> int | None:
        tokens = self.ctx.tokens[self.over : self.close + 1]
        return next((tok.start for tok in tokens if tok.text.upper() == word), None)

    @property
    def over_at(self) -> int:
        return self.ctx.tokens[self.over].start


def _matching(ctx: RuleContext, index: int) -> int:
    """Index of the token closing the parenthesis opened at ``index``."""
    depth = 0
    for j in range(index, len(ctx.tokens)):
        kind = ctx.tokens[j].token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return j
    return len(ctx.tokens) - 1


def _span(node: exp.Window, ctx: RuleContext) -> _Span:
    func = node.this
    start = func.meta.get("start") if func._meta else None
    if start is None:
        start = node_position(func)
    tokens = ctx.tokens
    first = next((i for i, tok in enumerate(tokens) if tok.start == start), None)
    over = None
    if first is not None and first + 1 < len(tokens) and (
        tokens[first + 1].token_type == TokenType.L_PAREN
    ):
        after = _matching(ctx, first + 1) + 1
        if after < len(tokens) and tokens[after].token_type == TokenType.OVER:
            over = after
    if over is None:
        begin = first or 0
        over = next((i for i in range(begin, len(tokens))
                     if tokens[i].token_type == TokenType.OVER), begin)
    close = over
    if over + 1 < len(tokens) and tokens[over + 1].token_type == TokenType.L_PAREN:
        close = _matching(ctx, over + 1)
    return _Span(ctx, start, over, close)


def check_window(node: exp.Window, ctx: RuleContext, max_window_seconds: int) -> Problem | None:
    """Why the window term ``node`` may not appear in a rule, or None (its fields recorded)."""
    try:
        read_window(node, ctx, max_window_seconds)
    except _Refused as refused:
        return refused.problem
    return None


def read_window(node: exp.Window, ctx: RuleContext, max_window_seconds: int) -> WindowShape:
    """The meaning of a window term; raises ``_Refused`` (a `Problem`) when it is not allowed."""
    span = _span(node, ctx)
    function = _function(node, span)
    if node.args.get("alias") is not None or node.args.get("first") is not None:
        raise _Refused(f"a window must be written out in full: OVER (PARTITION BY ... ORDER BY "
                       f"... {FRAME})", "OVER", span.over_at)
    argument, distinct = _argument(node.this, function, ctx, span)
    partition_by = _partition(node, ctx, span)
    order_by = _order(node, ctx, span)
    seconds = _frame(node, span, max_window_seconds)
    ctx.functions.add(function)
    return WindowShape(function, argument, distinct, partition_by, order_by, seconds)


def _function(node: exp.Window, span: _Span) -> str:
    func = node.this
    name = _CLASSES.get(type(func))
    if name is not None and func._meta and "start" in func._meta:
        written = span.ctx.text[func.meta["start"] : func.meta["end"] + 1].lower()
        name = name if written == name else None
    if name is None:
        shown = func.sql(dialect="spark")
        if func._meta and "start" in func._meta:
            shown = span.ctx.text[func.meta["start"] : func.meta["end"] + 1]
        elif isinstance(func, exp.Func) and span.function_at is not None:
            # the name written before the call's '(' (sqlglot may rename the function)
            tokens = span.ctx.tokens
            calls = [i for i in range(len(tokens) - 1) if tokens[i].start <= span.function_at
                     and tokens[i + 1].token_type == TokenType.L_PAREN]
            if calls:
                shown = tokens[calls[-1]].text
                span.function_at = tokens[calls[-1]].start
        where = span.function_at if span.function_at is not None else span.over_at
        raise _Refused(f"'{clip(shown)}' cannot be used over a window: a velocity rule allows "
                       f"{_ALLOWED}", shown, where)
    return name


def _field(column: exp.Expr, ctx: RuleContext, role: str, span: _Span) -> tuple[str, FieldType]:
    """The schema field a window part names (a bare field name, nothing else)."""
    if isinstance(column, exp.Window):
        inner = _span(column, ctx)
        raise _Refused("window terms cannot be nested: the argument of a window term is a "
                       "field", "OVER", inner.over_at)
    if not isinstance(column, exp.Column) or isinstance(column.this, exp.Star):
        shown = column.sql(dialect="spark")
        where = node_position(column)
        raise _Refused(f"{role} must be a field of the pipeline's schema, not "
                       f"'{clip(shown)}'", shown, where if where is not None else span.over_at)
    problem = check_node(column, ctx)
    if problem is not None:
        raise _Refused(*problem)
    name, ftype = ctx.known[column.name.lower()]
    if name in METADATA_COLUMNS:
        raise _Refused(f"{role} must be a field of the pipeline's schema, not the metadata "
                       f"column '{name}'", name, node_position(column))
    return name, ftype


def _argument(func: exp.Expr, function: str, ctx: RuleContext, span: _Span
              ) -> tuple[str | None, bool]:
    value = func.this
    extra = func.args.get("expressions")
    if extra:
        raise _Refused(f"{function} over a window takes one field", function, span.function_at)
    if function == "count" and isinstance(value, exp.Star):
        return None, False
    distinct = isinstance(value, exp.Distinct)
    if distinct:
        where = span.function_at
        if function != "count":
            raise _Refused(f"DISTINCT is only allowed in count(DISTINCT x) over a window, not in "
                           f"{function}", "DISTINCT", where)
        values = value.expressions
        if len(values) != 1:
            raise _Refused("count(DISTINCT ...) over a window takes exactly one field",
                           "DISTINCT", where)
        value = values[0]
    if value is None:
        raise _Refused(f"{function}() needs a field", function, span.function_at)
    name, ftype = _field(value, ctx, f"the argument of {function}", span)
    if function in ("sum", "avg") and not ftype.is_numeric:
        raise _Refused(f"{function}({name}) needs a numeric field; '{name}' is {ftype.value}",
                       name, node_position(value))
    if function in ("min", "max") and not (ftype.is_numeric or ftype is FieldType.TIMESTAMP):
        raise _Refused(f"{function}({name}) needs a numeric or timestamp field; '{name}' is "
                       f"{ftype.value}", name, node_position(value))
    return name, distinct


def _partition(node: exp.Window, ctx: RuleContext, span: _Span) -> str:
    keys = node.args.get("partition_by") or []
    if not keys:
        raise _Refused("a window needs PARTITION BY one field (the entity, e.g. PARTITION BY "
                       "account)", "OVER", span.over_at)
    if len(keys) > 1:
        where = node_position(keys[1])
        raise _Refused("a window is partitioned by exactly one field (one entity key); write "
                       "one rule per key", keys[1].sql(dialect="spark"),
                       where if where is not None else span.find(TokenType.PARTITION_BY))
    return _field(keys[0], ctx, "PARTITION BY", span)[0]


def _order(node: exp.Window, ctx: RuleContext, span: _Span) -> str:
    order = node.args.get("order")
    items = order.expressions if isinstance(order, exp.Order) else []
    if not items:
        raise _Refused("a window needs ORDER BY a timestamp field (the event time)", "OVER",
                       span.over_at)
    if len(items) > 1:
        where = node_position(items[1])
        raise _Refused("a window is ordered by exactly one timestamp field",
                       items[1].sql(dialect="spark"),
                       where if where is not None else span.find(TokenType.ORDER_BY))
    item = items[0]
    if isinstance(item, exp.Ordered) and item.args.get("desc"):
        raise _Refused("a window is ordered by time ascending: remove DESC", "DESC",
                       span.find(TokenType.DESC))
    column = item.this if isinstance(item, exp.Ordered) else item
    name, ftype = _field(column, ctx, "ORDER BY", span)
    if ftype is not FieldType.TIMESTAMP:
        stamps = sorted(n for n, t in ctx.known.values()
                        if t is FieldType.TIMESTAMP and n not in METADATA_COLUMNS)
        hint = f" (e.g. {', '.join(stamps[:3])})" if stamps else " (the schema has none)"
        raise _Refused(f"ORDER BY '{name}' is {ftype.value}: a window is ordered by a timestamp "
                       f"field{hint}", name, node_position(column))
    return name


def _frame(node: exp.Window, span: _Span, max_window_seconds: int) -> int:
    spec = node.args.get("spec")
    if not isinstance(spec, exp.WindowSpec):
        raise _Refused(f"a window needs the frame {FRAME}", "OVER", span.over_at)
    kind = str(spec.args.get("kind") or "").upper()
    if kind != "RANGE":
        where = span.find(TokenType.ROWS) if kind == "ROWS" else span.find_word(kind)
        raise _Refused(f"{kind or 'this'} frames are not allowed: a velocity window is a time "
                       f"range, {FRAME}", kind or None, where)
    for side in ("start_side", "end_side"):
        if str(spec.args.get(side) or "").upper() == "FOLLOWING":
            raise _Refused("FOLLOWING is not allowed: a window ends at the current event "
                           "(... AND CURRENT ROW)", "FOLLOWING", span.find_word("FOLLOWING"))
    end = spec.args.get("end")
    if str(end or "").upper() != "CURRENT ROW" or spec.args.get("exclude"):
        raise _Refused(f"the window must end at the current event: {FRAME}", None,
                       span.find(TokenType.RANGE))
    start = spec.args.get("start")
    interval_at = span.find(TokenType.INTERVAL)
    if not isinstance(start, exp.Interval) or str(spec.args.get("start_side")).upper() != (
        "PRECEDING"
    ):
        shown = start.sql(dialect="spark") if isinstance(start, exp.Expr) else str(start)
        raise _Refused(f"the window must start at INTERVAL n unit PRECEDING (e.g. INTERVAL 5 "
                       f"MINUTES PRECEDING), not '{clip(shown)}'", shown,
                       interval_at if interval_at is not None else span.find(TokenType.RANGE))
    return _seconds(start, interval_at, max_window_seconds)


def _seconds(interval: exp.Interval, where: int | None, max_window_seconds: int) -> int:
    shown = interval.sql(dialect="spark")
    unit = interval.args.get("unit")
    value = interval.this
    word = unit.name.upper().removesuffix("S") if isinstance(unit, exp.Var) else ""
    text = value.name if isinstance(value, exp.Literal) else ""
    if word not in UNIT_SECONDS or not text.isdigit():
        raise _Refused(f"the window length must be a whole number of SECONDS, MINUTES, HOURS or "
                       f"DAYS (e.g. INTERVAL 10 MINUTES), not '{clip(shown)}'", shown, where)
    seconds = int(text) * UNIT_SECONDS[word]
    if seconds <= 0:
        raise _Refused("the window length must be positive", shown, where)
    if seconds > max_window_seconds:
        size = f" ({seconds} s)" if seconds < 10**12 else ""
        raise _Refused(f"the window is longer than the allowed maximum of {max_window_seconds} "
                       f"seconds{size}", shown, where)
    return seconds
