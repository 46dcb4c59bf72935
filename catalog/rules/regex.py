"""Which regular expressions a rule may use: those Java's backtracking engine runs in linear time.

Spark evaluates ``RLIKE``/``regexp_*`` with ``java.util.regex``, which backtracks: a pattern such
as ``(a+)+$`` takes exponential time on ``'aaaa…b'``, and ``\\d+\\d+`` quadratic time. A rule runs
on every event, so its pattern must be a literal that `regex_problem` accepts:

- no quantifier inside a repeated group (``(a+)+``, ``(a*b?)*``);
- no repeated alternation whose branches can start with the same character (``(a|ab)*``);
- no two adjacent unbounded quantifiers over overlapping characters (``\\d+\\d*``, ``.*.*``);
- repetition counts of at most `MAX_REPEAT_COUNT`; no back-references, look-arounds or
  conditionals; only syntax both Java and Python read the same way.

The check is deliberately conservative: it may refuse a pattern that happens to be fast, never
the other way round for the constructs above.
"""

from __future__ import annotations

import re
import re._constants as sre_c
import re._parser as sre_p
from collections.abc import Callable, Iterable
from typing import Any

MAX_REPEAT_COUNT = 1000
"""Largest count a ``{n}``/``{n,m}`` repetition may use."""

MAX_PATTERN_LENGTH = 1000

REWRITES = (
    "e.g. write (a+)+ as a+, (\\d+\\.?)+ as [\\d.]+, (a|ab)* as (ab?)*, \\d+\\d+ as \\d{2,}"
)

# Java syntax Python's parser would misread or reject; refused with a plain explanation.
_JAVA_ONLY = re.compile(r"\\[pPQEGRXhHvVkz]|\(\?[<]?[=!]|\(\?>|\(\?P|&&")
# Characters used to compare what two pattern pieces can match (ASCII, Latin-1 and a few more).
_UNIVERSE = frozenset([*range(0, 0x250), 0x2028, 0x3000, 0x4E00])
_WORD = frozenset(ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_DIGIT = frozenset(range(ord("0"), ord("9") + 1))
_SPACE = frozenset(ord(c) for c in " \t\n\x0b\x0c\r")
_CATEGORIES: dict[Any, frozenset[int]] = {
    sre_c.CATEGORY_DIGIT: _DIGIT,
    sre_c.CATEGORY_NOT_DIGIT: _UNIVERSE - _DIGIT,
    sre_c.CATEGORY_WORD: _WORD,
    sre_c.CATEGORY_NOT_WORD: _UNIVERSE - _WORD,
    sre_c.CATEGORY_SPACE: _SPACE,
    sre_c.CATEGORY_NOT_SPACE: _UNIVERSE - _SPACE,
}
_REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None))


class UnsafeRegex(ValueError):
    """A pattern refused; the message says why and how to rewrite it."""


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` may not be used in a rule (None when it is safe)."""
    try:
        check_regex(pattern)
    except UnsafeRegex as exc:
        return str(exc)
    return None


def check_regex(pattern: str) -> None:
    """Raise `UnsafeRegex` unless `pattern` runs in linear time on Java's regex engine."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsafeRegex(f"the pattern is too long (at most {MAX_PATTERN_LENGTH} characters)")
    java_only = _JAVA_ONLY.search(pattern)
    if java_only:
        raise UnsafeRegex(
            f"'{java_only.group()}' is not supported in rule patterns (no look-arounds, "
            "atomic groups, \\p{...} classes, \\Q...\\E quoting or class intersections)"
        )
    try:
        parsed = sre_p.parse(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise UnsafeRegex(f"the pattern is not a valid regular expression ({exc})") from None
    _check_sequence(list(parsed), repeated=False)


def _is_repeat(op: Any) -> bool:
    return op is not None and op in _REPEATS


def _unbounded(max_count: int) -> bool:
    return bool(max_count == sre_c.MAXREPEAT)


def _check_sequence(items: list[tuple[Any, Any]], *, repeated: bool) -> None:
    previous: frozenset[int] | None = None  # what an unbounded quantifier just before matches
    for op, av in items:
        if op in (sre_c.GROUPREF, sre_c.GROUPREF_EXISTS):
            raise UnsafeRegex("back-references such as \\1 are not allowed in rule patterns")
        if op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            raise UnsafeRegex("look-ahead and look-behind are not allowed in rule patterns")
        if op is getattr(sre_c, "ATOMIC_GROUP", object()):
            raise UnsafeRegex("atomic groups are not allowed in rule patterns")
        if _is_repeat(op):
            low, high, sub = av
            if low > MAX_REPEAT_COUNT or (not _unbounded(high) and high > MAX_REPEAT_COUNT):
                raise UnsafeRegex(
                    f"repetition counts may be at most {MAX_REPEAT_COUNT} (found {{{low},"
                    f"{'' if _unbounded(high) else high}}})"
                )
            many = _unbounded(high) or high > 1
            if many and sub.getwidth()[0] == 0:
                raise UnsafeRegex(
                    "a repeated group that can match empty text (such as (a?)* or (a|)+) can "
                    f"take exponential time; {REWRITES}"
                )
            if many and _contains_repeat(sub):
                raise UnsafeRegex(
                    "nested quantifiers (a repeated group that itself contains +, * or {n,m}) "
                    f"can take exponential time; {REWRITES}"
                )
            if many:
                _check_alternatives(sub)
            _check_sequence(list(sub), repeated=repeated or many)
            chars = _first_chars(list(sub))
            if _unbounded(high):
                if previous is not None and previous & chars:
                    raise UnsafeRegex(
                        "two adjacent unbounded quantifiers over the same characters can take "
                        f"quadratic time; {REWRITES}"
                    )
                previous = chars
            elif low > 0:
                previous = None  # a required bounded piece separates what comes before
            continue
        if op is sre_c.SUBPATTERN:
            _check_sequence(list(av[-1]), repeated=repeated)
            previous = None
            continue
        if op is sre_c.BRANCH:
            for branch in av[1]:
                _check_sequence(list(branch), repeated=repeated)
            previous = None
            continue
        if op is sre_c.AT:
            continue
        previous = None


def _contains_repeat(items: Iterable[tuple[Any, Any]]) -> bool:
    for op, av in items:
        if _is_repeat(op):
            low, high, _sub = av
            if _unbounded(high) or high > 1:
                return True
            if _contains_repeat(_sub):
                return True
        elif op is sre_c.SUBPATTERN and _contains_repeat(av[-1]):
            return True
        elif op is sre_c.BRANCH and any(_contains_repeat(b) for b in av[1]):
            return True
    return False


def _check_alternatives(items: Iterable[tuple[Any, Any]]) -> None:
    for op, av in items:
        if op is sre_c.SUBPATTERN:
            _check_alternatives(av[-1])
        elif op is sre_c.IN and _class_overlaps(av):
            # Python folds (\w|\d) into one class; Java backtracks over both alternatives.
            raise UnsafeRegex(
                "a repeated choice whose alternatives overlap (such as (\\w|\\d)+) can take "
                f"exponential time; {REWRITES}"
            )
        elif op is sre_c.BRANCH:
            seen: frozenset[int] = frozenset()
            for branch in av[1]:
                chars = _first_chars(list(branch))
                if seen & chars or not chars:
                    raise UnsafeRegex(
                        "a repeated group whose alternatives can match the same text can take "
                        f"exponential time; {REWRITES}"
                    )
                seen |= chars


def _class_overlaps(items: list[tuple[Any, Any]]) -> bool:
    """Whether two members of a character class (or of a folded alternation) overlap."""
    if any(op is sre_c.NEGATE for op, _av in items):
        return False
    seen: frozenset[int] = frozenset()
    for item in items:
        chars = _class_set([item])
        if seen & chars:
            return True
        seen |= chars
    return False


def _first_chars(items: list[tuple[Any, Any]]) -> frozenset[int]:
    """The characters a match of `items` can start with (within `_UNIVERSE`)."""
    result: frozenset[int] = frozenset()
    for op, av in items:
        if op is sre_c.AT:
            continue
        if _is_repeat(op):
            low, _high, sub = av
            result |= _first_chars(list(sub))
            if low == 0:
                continue  # optional: what follows may come first too
            return result
        if op is sre_c.SUBPATTERN:
            return result | _first_chars(list(av[-1]))
        if op is sre_c.BRANCH:
            for branch in av[1]:
                result |= _first_chars(list(branch))
            return result
        return result | _set_of(op, av)
    return result


def _set_of(op: Any, av: Any) -> frozenset[int]:
    if op is sre_c.LITERAL:
        return frozenset({av})
    if op is sre_c.NOT_LITERAL:
        return _UNIVERSE - {av}
    if op is sre_c.ANY:
        return _UNIVERSE
    if op is sre_c.IN:
        return _class_set(av)
    return _UNIVERSE  # anything else: assume it may match any character


def _class_set(items: list[tuple[Any, Any]]) -> frozenset[int]:
    negate = False
    chars: set[int] = set()
    rules: dict[Any, Callable[[Any], Iterable[int]]] = {
        sre_c.LITERAL: lambda av: (av,),
        sre_c.RANGE: lambda av: range(av[0], av[1] + 1),
        sre_c.CATEGORY: lambda av: _CATEGORIES.get(av, _UNIVERSE),
    }
    for op, av in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op in rules:
            chars.update(c for c in rules[op](av) if c in _UNIVERSE)
        else:
            chars.update(_UNIVERSE)
    return _UNIVERSE - chars if negate else frozenset(chars)
