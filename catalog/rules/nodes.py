"""Per-node checks of a rule's syntax tree: fields, functions, clocks and forbidden syntax.

``check_node`` judges one node and records the fields and functions the rule uses; the
size, growth and pattern bounds are in ``catalog.rules.limits``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from catalog.rules.field_types import FieldType
from catalog.rules.functions import (
    ALLOWED_FUNCTION_NAMES,
    ANONYMOUS_FUNCTIONS,
    CLOCK_FUNCTIONS,
    CLOCK_REASON,
    FORBIDDEN_FUNCTION_REASONS,
    FUNCTION_CLASSES,
    FUNCTION_EXAMPLES,
)
from catalog.rules.limits import (
    GROWING,
    REGEX_CLASSES,
    check_growth,
    check_like,
    check_number,
    check_pattern,
    check_size,
    check_type_parameters,
)
from catalog.rules.problems import Problem, clip, node_position, suggest

# Operators, literals and other syntax that is always fine by itself (children are checked).
_OPERATORS: tuple[type[exp.Expr], ...] = (
    exp.And, exp.Or, exp.Not, exp.Paren, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.NullSafeEQ, exp.Between, exp.Like, exp.ILike, exp.Is, exp.Add, exp.Sub, exp.Mul,
    exp.Div, exp.Mod, exp.IntDiv, exp.Neg, exp.DPipe, exp.BitwiseAnd, exp.BitwiseOr,
    exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift, exp.Case,
    exp.Literal, exp.Boolean, exp.Null, exp.Interval, exp.Escape,
)  # fmt: skip


_CAST_TARGETS = frozenset(
    {
        exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR,
        exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT,
        exp.DataType.Type.BIGINT, exp.DataType.Type.FLOAT, exp.DataType.Type.DOUBLE,
        exp.DataType.Type.DECIMAL, exp.DataType.Type.BOOLEAN, exp.DataType.Type.DATE,
        exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ,
        exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.TIMESTAMPLTZ,
    }
)  # fmt: skip


_ONE_EVENT = "a rule looks at one event at a time"


_CLOCK_CLASSES: tuple[type[exp.Expr], ...] = (
    exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime, exp.CurrentDatetime,
    exp.CurrentTimestampLTZ, exp.Localtime, exp.Localtimestamp,
)  # fmt: skip


@dataclass
class RuleContext:
    """What `check_node` needs about the rule being validated, and what it collects."""

    text: str
    tokens: list[Token]
    known: Mapping[str, tuple[str, FieldType]]  # lower-case name -> (name, type)
    call_words: frozenset[str]  # lower-case words written right before '('
    columns: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)

    def token_position(self, *types: TokenType) -> int | None:
        """Where the first token of one of `types` starts."""
        return next((tok.start for tok in self.tokens if tok.token_type in types), None)

    def call_position(self, name: str) -> int | None:
        """Where the first call ``name(`` starts."""
        pairs = zip(self.tokens, self.tokens[1:], strict=False)
        return next(
            (
                tok.start
                for tok, nxt in pairs
                if nxt.token_type == TokenType.L_PAREN and tok.text.lower() == name
            ),
            None,
        )



def _written_name(node: exp.Func, ctx: RuleContext) -> str:
    if node._meta and "start" in node._meta:
        return ctx.text[node._meta["start"] : node._meta["end"] + 1].lower()
    return node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()



def check_node(node: exp.Expr, ctx: RuleContext) -> Problem | None:
    """Why `node` may not appear in a rule, or None; records allowed columns and functions."""
    if isinstance(node, exp.Column):
        return _check_column(node, ctx)
    if isinstance(node, exp.Literal):
        return check_number(node)
    if isinstance(node, exp.Like | exp.ILike):
        return check_like(node)
    if isinstance(node, exp.In):
        if not node.expressions and not node.args.get("query"):
            return "IN needs at least one value", "IN", node_position(node)
        return None
    if isinstance(node, _OPERATORS):
        if type(node) in FUNCTION_CLASSES:  # mod(a, b) parses like a % b
            ctx.functions.update(w for w in FUNCTION_CLASSES[type(node)] if w in ctx.call_words)
        return None
    if (
        isinstance(node, exp.DataType)
        and node.arg_key == "to"
        and isinstance(node.parent, exp.Cast)
    ):
        return check_type_parameters(node)  # the type itself was checked with its Cast
    if isinstance(node, exp.Var):
        unit = node.arg_key == "unit" or (
            node.arg_key == "this" and isinstance(node.parent, exp.Extract)
        )
        return None if unit else (f"unexpected word '{node.name}'", node.name, None)
    if isinstance(node, exp.Func):
        return _check_function(node, ctx)
    return _check_syntax(node, ctx)



def _check_column(node: exp.Column, ctx: RuleContext) -> Problem | None:
    if isinstance(node.this, exp.Star):
        return "'*' is not allowed: name the fields the rule uses", "*", node_position(node)
    if len(node.parts) > 1:
        written = ".".join(part.name for part in node.parts)
        return (
            f"qualified name '{clip(written)}' is not allowed: refer to a field by its bare "
            f"name, e.g. '{clip(node.name)}'",
            written,
            node_position(node),
        )
    entry = ctx.known.get(node.name.lower())
    if entry is None and node.name.lower() in CLOCK_FUNCTIONS and not node.this.quoted:
        message = f"'{node.name}' is not allowed in rules: {CLOCK_REASON}"
        return message, node.name, node_position(node)
    if entry is None:
        names = sorted(name for name, _ in ctx.known.values())
        schema = [name for name in names if not name.startswith("_")]
        listing = ", ".join(schema[:12]) + (", ..." if len(schema) > 12 else "")
        return (
            f"unknown field '{clip(node.name)}'{suggest(node.name, names)}; "
            f"the pipeline's fields are: {listing}",
            node.name,
            node_position(node),
        )
    ctx.columns.add(entry[0])
    node.this.set("this", entry[0])  # the schema's spelling; keeps the source position
    return None



def _check_function(node: exp.Func, ctx: RuleContext) -> Problem | None:
    name = _written_name(node, ctx)
    position = node.meta["start"] if node._meta and "start" in node._meta else None
    for word in (name, *FUNCTION_CLASSES.get(type(node), ())):
        if position is None:
            position = ctx.call_position(word)
    if position is None:
        position = node_position(node)
    clock = _clock_name(node, name, ctx)
    if clock is not None:
        where = ctx.call_position(clock)
        if where is None:
            where = ctx.token_position(
                TokenType.CURRENT_TIMESTAMP, TokenType.CURRENT_DATE, TokenType.CURRENT_TIME
            )
        message = f"'{clock}' is not allowed in rules: {CLOCK_REASON}"
        return message, clock, where if where is not None else position
    if isinstance(node, exp.Anonymous) and name in ANONYMOUS_FUNCTIONS:
        if name == "regexp" and (problem := check_pattern(node, name, position)):
            return problem
        ctx.functions.add(name)
        return None
    if isinstance(node, exp.AggFunc):
        if node.find(exp.Window) is not None:
            return (f"a window term cannot be inside the aggregate function '{name}': compare "
                    "the window term itself (e.g. count(*) OVER (...) >= 3)", name, position)
        return (f"aggregate function '{name}' is not allowed: {_ONE_EVENT}; an aggregate of "
                "recent events is written as a window term, e.g. count(*) OVER (PARTITION BY "
                "account ORDER BY ts RANGE BETWEEN INTERVAL 5 MINUTES PRECEDING AND CURRENT ROW)",
                name, position)
    if isinstance(node, exp.UDTF):
        return (
            f"generator function '{name}' is not allowed: a rule gives one true/false per event",
            name,
            position,
        )
    if isinstance(node, exp.Exists) and isinstance(node.this, exp.Query):
        return _subquery(ctx)
    if isinstance(node, exp.JSONExtract | exp.JSONExtractScalar) and not node._meta:
        return _lambda(ctx)
    spellings = FUNCTION_CLASSES.get(type(node))
    if spellings is None:
        reason = FORBIDDEN_FUNCTION_REASONS.get(name)
        if reason:
            return f"function '{clip(name)}' is not allowed in rules: {reason}", name, position
        hint = suggest(name, ALLOWED_FUNCTION_NAMES)
        return (
            f"function '{clip(name)}' is not allowed in rules{hint}: only allow-listed Spark "
            "built-ins can be called, no user-defined functions "
            f"(e.g. {FUNCTION_EXAMPLES})",
            name,
            position,
        )
    if node._meta and "start" in node._meta and name not in spellings:
        return (
            f"'{clip(name)}' is not a Spark SQL function{suggest(name, ALLOWED_FUNCTION_NAMES)}",
            name,
            position,
        )
    if isinstance(node, GROWING) and (problem := check_size(node, name, position)):
        return problem
    if isinstance(node, REGEX_CLASSES) and (problem := check_pattern(node, name, position)):
        return problem
    if isinstance(node, exp.Replace | exp.RegexpReplace | exp.Levenshtein) and (
        problem := check_growth(node, name, position)
    ):
        return problem
    if isinstance(node, exp.Cast):
        target = node.args.get("to")
        if not isinstance(target, exp.DataType) or target.this not in _CAST_TARGETS:
            shown = target.sql(dialect="spark") if target is not None else "?"
            return (
                f"cannot cast to '{clip(shown)}': rules may cast only to string, numeric, "
                "boolean, date and timestamp types",
                shown,
                position,
            )
    if node._meta and "start" in node._meta:
        ctx.functions.add(name)
    else:  # special syntax (cast, if, substring, ...) or added by sqlglot (e.g. for 1000L)
        ctx.functions.update(word for word in spellings if word in ctx.call_words)
    return None



def _clock_name(node: exp.Func, name: str, ctx: RuleContext) -> str | None:
    """The name the user wrote for a clock function (None when `node` is not one)."""
    if isinstance(node, exp.Anonymous):
        return name if name in CLOCK_FUNCTIONS else None
    if not isinstance(node, _CLOCK_CLASSES):
        return None
    if isinstance(node.parent, exp.StrToUnix) and not node._meta:
        return "unix_timestamp"  # unix_timestamp() without arguments reads the clock
    if name in CLOCK_FUNCTIONS:
        return name
    written = [tok.text.lower() for tok in ctx.tokens if tok.text.lower() in CLOCK_FUNCTIONS]
    return written[0] if written else node.sql_name().lower()



def _subquery(ctx: RuleContext) -> Problem:
    return (
        f"subqueries are not allowed: {_ONE_EVENT} and cannot read tables",
        "SELECT",
        ctx.token_position(TokenType.SELECT, TokenType.WITH),
    )



def _lambda(ctx: RuleContext) -> Problem:
    return (
        "lambda functions and '->' are not allowed",
        "->",
        ctx.token_position(TokenType.ARROW, TokenType.FARROW),
    )



def _check_syntax(node: exp.Expr, ctx: RuleContext) -> Problem:
    position = node_position(node)
    if isinstance(node, exp.Subquery | exp.Query | exp.Any | exp.All):
        return _subquery(ctx)
    if isinstance(node, exp.Table | exp.From | exp.Join):
        return "table references are not allowed: a rule only sees its event", None, position
    if isinstance(node, exp.Window):
        return (
            f"window functions (OVER ...) are not allowed: {_ONE_EVENT}",
            "OVER",
            ctx.token_position(TokenType.OVER),
        )
    if isinstance(node, exp.Lambda):
        return _lambda(ctx)
    if isinstance(node, exp.Placeholder | exp.Parameter):
        shown = node.sql(dialect="spark")
        return (
            f"parameters and variables such as '{clip(shown)}' are not allowed: write the value",
            shown,
            ctx.token_position(TokenType.PARAMETER, TokenType.PLACEHOLDER, TokenType.COLON),
        )
    if isinstance(node, exp.Star):
        return "'*' is not allowed: name the fields the rule uses", "*", position
    if isinstance(node, exp.Alias):
        alias = node.args.get("alias")
        where = node_position(alias) if alias is not None else None
        return f"unexpected '{clip(node.alias)}' after the condition", node.alias, where
    if isinstance(node, exp.Dot):
        shown = node.sql(dialect="spark")
        return f"'.' access is not allowed ('{clip(shown)}')", shown, position
    shown = node.sql(dialect="spark")
    return f"'{clip(shown)}' is not supported in rules", shown, position
