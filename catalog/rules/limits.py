"""Bounds on what a rule may make Spark do per event: sizes, growth, patterns, numbers.

A rule runs on every event, so every argument that sets how much work or memory a call takes
must be a small literal: lengths given to ``repeat``/``lpad``/``rpad``/``space``, replacement
texts, ``levenshtein``'s literal side, LIKE wildcards, regular expressions (linear time only,
``catalog.rules.regex``) and cast type parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sqlglot import exp

from catalog.rules.problems import Problem, clip, node_position
from catalog.rules.regex import regex_problem

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


GROWING = (exp.Repeat, exp.Pad, exp.Space)


# Functions whose pattern argument (`expression`) is a Java regular expression.
REGEX_CLASSES: tuple[type[exp.Expr], ...] = (
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


def int_literal(node: exp.Expr | None) -> int | None:
    """The value of a whole-number literal such as ``5`` or ``-5`` (None for anything else)."""
    sign = 1
    if isinstance(node, exp.Neg):
        sign, node = -1, node.this
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return sign * int(node.this) if len(node.this) <= 12 else None
    return None



def check_size(node: exp.Func, name: str, position: int | None) -> Problem | None:
    """Length and count arguments must be small literals, and growth may not nest."""
    value = int_literal(node.args.get(_SIZE_ARGUMENTS[type(node)]))
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
    if source is not None and any(isinstance(n, GROWING) for n in source.walk()):
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



def check_growth(node: exp.Func, name: str, position: int | None) -> Problem | None:
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



def check_pattern(node: exp.Func, name: str, position: int | None) -> Problem | None:
    """A regular expression must be a literal that runs in linear time (``catalog.rules.regex``)."""
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



def check_like(node: exp.Like | exp.ILike) -> Problem | None:
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



def check_number(node: exp.Literal) -> Problem | None:
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



def check_type_parameters(node: exp.DataType) -> Problem | None:
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
        value = int_literal(inner) if isinstance(inner, exp.Literal) else None
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
