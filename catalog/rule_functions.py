"""What a fraud rule may contain: the function allow-list and per-node checks (DESIGN §5).

Rules run inside the streaming job on every event, so only deterministic, per-row Spark SQL
built-ins are allowed: string, math, null-handling, conditional, cast and date/time functions.
Everything else (UDFs, ``reflect``/``java_method``, aggregates, generators, random or
environment-dependent functions) is rejected by `catalog.rule_validator`.

sqlglot parses most built-ins into a dedicated expression class (``substr(...)`` becomes
``exp.Substring``) and unknown names into ``exp.Anonymous``; both forms are listed here.
`check_node` judges one syntax-tree node; `is_boolean` decides structurally whether an
expression is a condition.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from catalog.field_types import FieldType

# sqlglot class -> the Spark spellings that parse into it (first = canonical name).
FUNCTION_CLASSES: Mapping[type[exp.Expr], tuple[str, ...]] = MappingProxyType(
    {
        # strings
        exp.Lower: ("lower", "lcase"),
        exp.Upper: ("upper", "ucase"),
        exp.Length: ("length", "char_length", "character_length", "len"),
        exp.Trim: ("trim", "ltrim", "rtrim"),
        exp.Substring: ("substring", "substr"),
        exp.Concat: ("concat",),
        exp.ConcatWs: ("concat_ws",),
        exp.Replace: ("replace",),
        exp.Translate: ("translate",),
        exp.RegexpExtract: ("regexp_extract",),
        exp.RegexpReplace: ("regexp_replace",),
        exp.RegexpLike: ("rlike", "regexp_like"),
        exp.RegexpCount: ("regexp_count",),
        exp.StrPosition: ("instr", "locate", "position"),
        exp.Pad: ("lpad", "rpad"),
        exp.RegexpSplit: ("split",),
        exp.SplitPart: ("split_part",),
        exp.StartsWith: ("startswith",),
        exp.EndsWith: ("endswith",),
        exp.Contains: ("contains",),
        exp.Initcap: ("initcap",),
        exp.Reverse: ("reverse",),
        exp.Left: ("left",),
        exp.Right: ("right",),
        exp.Levenshtein: ("levenshtein",),
        exp.Soundex: ("soundex",),
        exp.Repeat: ("repeat",),
        exp.Ascii: ("ascii",),
        # arrays (literal lists and split results only: schemas have no array fields)
        exp.Array: ("array",),
        exp.ArrayContains: ("array_contains",),
        exp.ArraySize: ("size",),
        # math
        exp.Abs: ("abs",),
        exp.Round: ("round",),
        exp.Floor: ("floor",),
        exp.Ceil: ("ceil", "ceiling"),
        exp.Sqrt: ("sqrt",),
        exp.Cbrt: ("cbrt",),
        exp.Pow: ("pow", "power"),
        exp.Exp: ("exp",),
        exp.Ln: ("ln", "log"),
        exp.Log: ("log", "log10", "log2"),
        exp.Mod: ("mod",),
        exp.Greatest: ("greatest",),
        exp.Least: ("least",),
        exp.Sign: ("sign", "signum"),
        exp.IsNan: ("isnan",),
        exp.Nanvl: ("nanvl",),
        # null handling and conditionals
        exp.Coalesce: ("coalesce", "nvl", "ifnull"),
        exp.Nvl2: ("nvl2",),
        exp.Nullif: ("nullif",),
        exp.If: ("if",),
        # casts (target type checked separately)
        exp.Cast: (
            "cast",
            "date",
            "timestamp",
            "string",
            "int",
            "double",
            "float",
            "boolean",
            "to_timestamp",
        ),
        exp.TryCast: ("try_cast", "cast"),
        # date and time
        exp.CurrentDate: ("current_date",),
        exp.CurrentTimestamp: ("current_timestamp",),
        exp.TsOrDsAdd: ("date_add", "date_sub"),
        exp.TimestampAdd: ("timestampadd", "dateadd"),
        exp.DateDiff: ("datediff", "date_diff"),
        exp.TimestampDiff: ("timestampdiff",),
        exp.TsOrDsToDate: ("to_date",),
        exp.StrToTime: ("to_timestamp",),
        exp.TimeStrToTime: ("to_timestamp",),
        exp.Year: ("year",),
        exp.Quarter: ("quarter",),
        exp.Month: ("month",),
        exp.Day: ("day",),
        exp.DayOfMonth: ("dayofmonth",),
        exp.DayOfWeek: ("dayofweek",),
        exp.DayOfYear: ("dayofyear",),
        exp.WeekOfYear: ("weekofyear",),
        exp.Hour: ("hour",),
        exp.Minute: ("minute",),
        exp.Second: ("second",),
        exp.Extract: ("extract",),
        exp.TimeToStr: ("date_format",),
        exp.StrToUnix: ("unix_timestamp", "to_unix_timestamp"),
        exp.UnixToStr: ("from_unixtime",),
        exp.TimestampTrunc: ("date_trunc",),
        exp.DateTrunc: ("trunc",),
        exp.MonthsBetween: ("months_between",),
        exp.AddMonths: ("add_months",),
        exp.LastDay: ("last_day",),
    }
)

# Spark built-ins sqlglot has no class for (parsed as exp.Anonymous), by lower-case name.
ANONYMOUS_FUNCTIONS = frozenset(
    {
        "isnull",
        "isnotnull",
        "regexp",
        "bround",
        "pmod",
        "btrim",
        "octet_length",
        "make_date",
        "date_part",
        "datepart",
        "now",
        "weekday",
        "timestamp_seconds",
        "bigint",
    }
)

# Functions whose result is true/false (a rule may consist of just a call to one of them).
BOOLEAN_FUNCTION_CLASSES: tuple[type[exp.Expr], ...] = (
    exp.StartsWith,
    exp.EndsWith,
    exp.Contains,
    exp.ArrayContains,
    exp.IsNan,
)
BOOLEAN_ANONYMOUS_FUNCTIONS = frozenset({"isnull", "isnotnull", "regexp"})

# Rejected functions that deserve a specific explanation, by lower-case name.
FORBIDDEN_FUNCTION_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "reflect": "it calls arbitrary Java methods",
        "java_method": "it calls arbitrary Java methods",
        "try_reflect": "it calls arbitrary Java methods",
        "rand": "it is random, so alerts could not be reproduced",
        "random": "it is random, so alerts could not be reproduced",
        "randn": "it is random, so alerts could not be reproduced",
        "uuid": "it is random, so alerts could not be reproduced",
        "shuffle": "it is random, so alerts could not be reproduced",
        "input_file_name": "it depends on how Spark runs the job, not on the event",
        "spark_partition_id": "it depends on how Spark runs the job, not on the event",
        "monotonically_increasing_id": "it depends on how Spark runs the job, not on the event",
        "current_user": "it depends on the job's environment, not on the event",
        "user": "it depends on the job's environment, not on the event",
        "session_user": "it depends on the job's environment, not on the event",
        "current_database": "it depends on the job's environment, not on the event",
        "current_schema": "it depends on the job's environment, not on the event",
        "current_catalog": "it depends on the job's environment, not on the event",
        "version": "it depends on the job's environment, not on the event",
        "raise_error": "it would stop the streaming job",
        "assert_true": "it would stop the streaming job",
    }
)

ALLOWED_FUNCTION_NAMES: tuple[str, ...] = tuple(
    sorted({name for names in FUNCTION_CLASSES.values() for name in names} | ANONYMOUS_FUNCTIONS)
)
"""Every function name a rule may call, for error messages and documentation."""

FUNCTION_EXAMPLES = "lower, upper, length, substring, abs, round, coalesce, date_add, datediff"


def is_allowed_anonymous(name: str) -> bool:
    """Whether a function sqlglot does not know (``exp.Anonymous``) is an allowed Spark built-in."""
    return name.lower() in ANONYMOUS_FUNCTIONS


def clip(text: str, limit: int = 40) -> str:
    """Shorten user text (whitespace collapsed) before echoing it in a message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def suggest(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a misspelt name, or an empty string."""
    lowered = {candidate.lower(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(f"'{lowered[m]}'" for m in matches) + "?)"


# Operators, literals and other syntax that is always fine by itself (children are checked).
_OPERATORS: tuple[type[exp.Expr], ...] = (
    exp.And, exp.Or, exp.Not, exp.Paren, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.NullSafeEQ, exp.Between, exp.Like, exp.ILike, exp.Is, exp.Add, exp.Sub, exp.Mul,
    exp.Div, exp.Mod, exp.IntDiv, exp.Neg, exp.DPipe, exp.BitwiseAnd, exp.BitwiseOr,
    exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift, exp.Case,
    exp.Literal, exp.Boolean, exp.Null, exp.Interval, exp.Escape,
)  # fmt: skip
_CONDITIONS: tuple[type[exp.Expr], ...] = (
    exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.NullSafeEQ, exp.In, exp.Between, exp.Like, exp.ILike, exp.RegexpLike, exp.Is,
    exp.Escape, exp.Boolean, *BOOLEAN_FUNCTION_CLASSES,
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

Problem = tuple[str, str | None, int | None]
"""(message, offending token, 0-based position in the stripped text)."""


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


def node_position(node: exp.Expr) -> int | None:
    """Leftmost source position sqlglot recorded for `node` or any node below it."""
    starts = [n.meta["start"] for n in node.walk() if n._meta and "start" in n._meta]
    return min(starts) if starts else None


def _written_name(node: exp.Func, ctx: RuleContext) -> str:
    if node._meta and "start" in node._meta:
        return ctx.text[node._meta["start"] : node._meta["end"] + 1].lower()
    return node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def check_node(node: exp.Expr, ctx: RuleContext) -> Problem | None:
    """Why `node` may not appear in a rule, or None; records allowed columns and functions."""
    if isinstance(node, exp.Column):
        return _check_column(node, ctx)
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
        return None  # the target type was checked with its Cast
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
    if isinstance(node, exp.Anonymous) and name in ANONYMOUS_FUNCTIONS:
        ctx.functions.add(name)
        return None
    if isinstance(node, exp.AggFunc):
        return f"aggregate function '{name}' is not allowed: {_ONE_EVENT}", name, position
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


def is_boolean(node: exp.Expr, types: Mapping[str, FieldType]) -> bool:
    """Whether an (already checked) expression yields true/false, judged from its structure."""
    if isinstance(node, exp.Paren):
        return is_boolean(node.this, types)
    if isinstance(node, _CONDITIONS):
        return True
    if isinstance(node, exp.Column):
        return types.get(node.name.lower()) is FieldType.BOOLEAN
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in BOOLEAN_ANONYMOUS_FUNCTIONS
    if isinstance(node, exp.Cast):
        target = node.args.get("to")
        return isinstance(target, exp.DataType) and target.this == exp.DataType.Type.BOOLEAN
    branches: list[exp.Expr | None]
    if isinstance(node, exp.Case):
        branches = [branch.args.get("true") for branch in node.args.get("ifs") or []]
        branches.append(node.args.get("default"))
    elif isinstance(node, exp.If):
        branches = [node.args.get("true"), node.args.get("false")]
    elif isinstance(node, exp.Coalesce):
        branches = [node.this, *node.expressions]
    else:
        return False
    present = [branch for branch in branches if branch is not None]
    return any(is_boolean(b, types) for b in present) and all(
        isinstance(b, exp.Null) or is_boolean(b, types) for b in present
    )


def describe_value(node: exp.Expr, types: Mapping[str, FieldType]) -> str:
    """Why a non-boolean expression is not a condition, with a hint how to make it one."""
    inner = node
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Column):
        ftype = types.get(inner.name.lower())
        example = f"{inner.name} = 'x'" if ftype is FieldType.STRING else f"{inner.name} > 0"
        kind = ftype.value if ftype else "a value"
        return f"field '{inner.name}' is {kind}, not true/false (e.g. write {example})"
    if isinstance(inner, exp.Null):
        return "NULL alone is not a condition"
    if isinstance(inner, exp.Literal):
        return f"the constant {clip(inner.sql(dialect='spark'))} is not a condition"
    return f"'{clip(inner.sql(dialect='spark'))}' computes a value; compare it (e.g. ... > 0)"
