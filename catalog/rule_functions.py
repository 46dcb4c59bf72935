"""What a fraud rule may contain: the function allow-list and per-node checks.

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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from catalog.field_types import FieldType
from catalog.rule_regex import regex_problem

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
        exp.Space: ("space",),
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
        # date and time (of the event's own fields; clock functions are refused)
        exp.TsOrDsAdd: ("date_add", "date_sub"),
        exp.TimestampAdd: ("timestampadd", "dateadd", "date_add"),
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
        "randstr": "it is random, so alerts could not be reproduced",
        "uniform": "it is random, so alerts could not be reproduced",
        "input_file_block_start": "it depends on how Spark runs the job, not on the event",
        "input_file_block_length": "it depends on how Spark runs the job, not on the event",
        "current_timezone": "it depends on the job's environment, not on the event",
        "array_repeat": "the size of its result has no safe bound",
        "sequence": "the size of its result has no safe bound",
        "format_string": "its field widths have no safe bound",
        "printf": "its field widths have no safe bound",
        "raise_error": "it would stop the streaming job",
        "assert_true": "it would stop the streaming job",
    }
)

CLOCK_FUNCTIONS = frozenset(
    {
        "current_timestamp", "current_date", "current_time", "now", "curdate",
        "localtimestamp", "sysdate", "getdate", "unix_timestamp",
    }
)  # fmt: skip
"""Functions that read the clock (``unix_timestamp`` only when called without arguments)."""

CLOCK_REASON = (
    "it reads the clock, so whether an alert exists would depend on when a batch, replay or "
    "backtest ran; compare with the event's own time fields instead (e.g. event_time > "
    "TIMESTAMP '2024-01-01 00:00:00' or datediff(event_time, signup_date) < 7)"
)

MAX_SIZE_ARGUMENT = 10_000
"""Largest length or count a rule may pass to ``repeat``, ``lpad``, ``rpad`` or ``space``."""

MAX_FIELD_REPEAT = 100
"""Largest count ``repeat`` may use on a value that is not a literal (an event field's size is
not bounded by the rule)."""

MAX_REPLACEMENT_LENGTH = 10
"""Longest replacement text of ``replace``/``regexp_replace`` (each match may grow by it)."""

MAX_COMPARED_LENGTH = 100
"""``levenshtein`` takes time proportional to the product of its inputs' lengths: one of them
must be a literal of at most this many characters."""

MAX_LIKE_WILDCARDS = 4
"""Most ``%`` wildcards a LIKE pattern may hold (each one multiplies the matching work)."""

# The argument of each size-making function that says how long its result is.
_SIZE_ARGUMENTS: Mapping[type[exp.Expr], str] = MappingProxyType(
    {exp.Repeat: "times", exp.Pad: "expression", exp.Space: "this"}
)
_GROWING = (exp.Repeat, exp.Pad, exp.Space)
# Functions whose pattern argument (`expression`) is a Java regular expression.
_REGEX_CLASSES: tuple[type[exp.Expr], ...] = (
    exp.RegexpLike, exp.RegexpExtract, exp.RegexpReplace, exp.RegexpCount, exp.RegexpSplit,
)  # fmt: skip
_TYPE_PARAMETER_LIMITS: Mapping[Any, tuple[tuple[int, int], ...]] = (
    MappingProxyType(
        {
            exp.DataType.Type.DECIMAL: ((1, 38), (0, 38)),
            exp.DataType.Type.VARCHAR: ((1, MAX_SIZE_ARGUMENT),),
            exp.DataType.Type.CHAR: ((1, MAX_SIZE_ARGUMENT),),
        }
    )
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
    if isinstance(node, exp.Literal):
        return _check_number(node)
    if isinstance(node, exp.Like | exp.ILike):
        return _check_like(node)
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
        return _check_type_parameters(node)  # the type itself was checked with its Cast
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
        if name == "regexp" and (problem := _check_pattern(node, name, position)):
            return problem
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
    if node._meta and "start" in node._meta and name not in spellings:
        return (
            f"'{clip(name)}' is not a Spark SQL function{suggest(name, ALLOWED_FUNCTION_NAMES)}",
            name,
            position,
        )
    if isinstance(node, _GROWING) and (problem := _check_size(node, name, position)):
        return problem
    if isinstance(node, _REGEX_CLASSES) and (problem := _check_pattern(node, name, position)):
        return problem
    if isinstance(node, exp.Replace | exp.RegexpReplace | exp.Levenshtein) and (
        problem := _check_growth(node, name, position)
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


_CLOCK_CLASSES: tuple[type[exp.Expr], ...] = (
    exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime, exp.CurrentDatetime,
    exp.CurrentTimestampLTZ, exp.Localtime, exp.Localtimestamp,
)  # fmt: skip


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


def _int_literal(node: exp.Expr | None) -> int | None:
    """The value of a whole-number literal such as ``5`` or ``-5`` (None for anything else)."""
    sign = 1
    if isinstance(node, exp.Neg):
        sign, node = -1, node.this
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return sign * int(node.this) if len(node.this) <= 12 else None
    return None


def _check_size(node: exp.Func, name: str, position: int | None) -> Problem | None:
    """Length and count arguments must be small literals, and growth may not nest."""
    value = _int_literal(node.args.get(_SIZE_ARGUMENTS[type(node)]))
    if value is None:
        return (
            f"the length given to '{name}' must be a whole-number literal (at most "
            f"{MAX_SIZE_ARGUMENT:,}), not an expression, so the result's size is known",
            name,
            position,
        )
    if value > MAX_SIZE_ARGUMENT:
        return (
            f"'{name}' may build at most {MAX_SIZE_ARGUMENT:,} characters; {value:,} is too "
            "many (a rule runs on every event)",
            name,
            position,
        )
    source = None if isinstance(node, exp.Space) else node.this
    if source is not None and any(isinstance(n, _GROWING) for n in source.walk()):
        return (
            f"'{name}' may not be applied to the result of repeat, lpad, rpad or space: "
            "nested growth multiplies the size",
            name,
            position,
        )
    if isinstance(node, exp.Repeat):
        if isinstance(source, exp.Literal) and source.is_string:
            if len(source.this) * value > MAX_SIZE_ARGUMENT:
                return (
                    f"'{name}' would build {len(source.this) * value:,} characters; at most "
                    f"{MAX_SIZE_ARGUMENT:,} are allowed",
                    name,
                    position,
                )
        elif value > MAX_FIELD_REPEAT:
            return (
                f"'{name}' of a value that is not a literal may repeat it at most "
                f"{MAX_FIELD_REPEAT} times (an event's field can be long)",
                name,
                position,
            )
    return None


def _check_growth(node: exp.Func, name: str, position: int | None) -> Problem | None:
    """Bound what grows with the event's size: replacements and ``levenshtein``'s work."""
    if isinstance(node, exp.Levenshtein):
        short = [
            arg
            for arg in (node.this, node.expression)
            if isinstance(arg, exp.Literal) and arg.is_string
            and len(arg.this) <= MAX_COMPARED_LENGTH
        ]
        if short:
            return None
        return (
            f"'{name}' must compare with a string literal of at most {MAX_COMPARED_LENGTH} "
            "characters (comparing two fields takes time proportional to both lengths)",
            name,
            position,
        )
    replacement = node.args.get("replacement")
    if replacement is None:
        return None
    if not (isinstance(replacement, exp.Literal) and replacement.is_string) or (
        len(replacement.this) > MAX_REPLACEMENT_LENGTH
    ):
        return (
            f"the replacement of '{name}' must be a string literal of at most "
            f"{MAX_REPLACEMENT_LENGTH} characters (each match could otherwise grow the value "
            "without bound)",
            name,
            position,
        )
    return None


def _check_pattern(node: exp.Func, name: str, position: int | None) -> Problem | None:
    """A regular expression must be a literal that runs in linear time (`rule_regex`)."""
    if isinstance(node, exp.Anonymous):
        pattern = node.expressions[1] if len(node.expressions) > 1 else None
    else:
        pattern = node.args.get("expression")
    shown = name if node._meta and "start" in node._meta else "RLIKE"
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        written = pattern.sql(dialect="spark") if pattern is not None else shown
        return (
            f"the pattern of {shown} must be a string literal such as '^[A-Z]{{3}}$', not "
            f"'{clip(written)}' (a pattern taken from the event could be made to run for hours)",
            written,
            node_position(pattern) if pattern is not None else position,
        )
    problem = regex_problem(pattern.this)
    if problem is None:
        return None
    return (
        f"unsafe pattern '{clip(pattern.this)}' in {shown}: {problem}",
        pattern.this,
        node_position(pattern),
    )


def _check_like(node: exp.Like | exp.ILike) -> Problem | None:
    pattern = node.expression
    keyword = "LIKE" if isinstance(node, exp.Like) else "ILIKE"
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        written = pattern.sql(dialect="spark")
        return (
            f"the pattern of {keyword} must be a string literal such as 'abc%', not "
            f"'{clip(written)}'",
            written,
            node_position(pattern),
        )
    if pattern.this.count("%") > MAX_LIKE_WILDCARDS:
        return (
            f"the {keyword} pattern '{clip(pattern.this)}' has more than {MAX_LIKE_WILDCARDS} "
            "'%' wildcards; each one multiplies the matching work (split it into several "
            "LIKE conditions joined with AND)",
            pattern.this,
            node_position(pattern),
        )
    return None


def _check_number(node: exp.Literal) -> Problem | None:
    if node.is_string:
        return None
    text = node.this
    digits = text.lower().split("e")[0].replace(".", "").lstrip("0")
    try:
        finite = math.isfinite(float(text))
    except (ValueError, OverflowError):
        finite = False
    if not finite or len(digits) > 38:
        return (
            f"the number {clip(text)} is out of range (at most 38 digits and within the range "
            "of a double)",
            text,
            node_position(node),
        )
    return None


def _check_type_parameters(node: exp.DataType) -> Problem | None:
    """Type parameters (``DECIMAL(12, 2)``) must be whole-number literals within Spark's range."""
    params = node.expressions
    if not params:
        return None
    shown = node.sql(dialect="spark")
    limits = _TYPE_PARAMETER_LIMITS.get(node.this, ())
    if len(params) > len(limits):
        return f"too many type parameters in '{clip(shown)}'", shown, node_position(node)
    values: list[int] = []
    for param, (low, high) in zip(params, limits, strict=False):
        inner = param.this if isinstance(param, exp.DataTypeParam) else param
        value = _int_literal(inner) if isinstance(inner, exp.Literal) else None
        if value is None or not low <= value <= high:
            written = inner.sql(dialect="spark") if isinstance(inner, exp.Expr) else str(inner)
            return (
                f"type parameter '{clip(written)}' in '{clip(shown)}' must be a whole number "
                f"from {low} to {high}",
                written,
                node_position(node),
            )
        values.append(value)
    if node.this == exp.DataType.Type.DECIMAL and len(values) == 2 and values[1] > values[0]:
        return f"in '{clip(shown)}' the scale may not exceed the precision", shown, None
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
