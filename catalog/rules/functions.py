"""Which Spark functions a fraud rule may call: the allow-list and the refusals' reasons.

Rules run inside the streaming job on every event, so only deterministic, per-row Spark SQL
built-ins are allowed: string, math, null-handling, conditional, cast and date/time functions.
Everything else (UDFs, ``reflect``/``java_method``, aggregates, generators, random or
environment-dependent functions) is refused by ``catalog.rules.validator``.

sqlglot parses most built-ins into a dedicated expression class (``substr(...)`` becomes
``exp.Substring``) and unknown names into ``exp.Anonymous``; both forms are listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sqlglot import exp

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


ALLOWED_FUNCTION_NAMES: tuple[str, ...] = tuple(
    sorted({name for names in FUNCTION_CLASSES.values() for name in names} | ANONYMOUS_FUNCTIONS)
)
"""Every function name a rule may call, for error messages and documentation."""


FUNCTION_EXAMPLES = "lower, upper, length, substring, abs, round, coalesce, date_add, datediff"


def is_allowed_anonymous(name: str) -> bool:
    """Whether a function sqlglot does not know (``exp.Anonymous``) is an allowed Spark built-in."""
    return name.lower() in ANONYMOUS_FUNCTIONS
