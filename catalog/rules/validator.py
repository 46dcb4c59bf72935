"""Validation of fraud-rule expressions before they are stored.

A rule is one Spark SQL boolean expression over the fields of one event, e.g.
``amount > 5000 AND currency IN ('XX', 'YY')``. The API calls `validate_rule` on every create or
edit and answers HTTP 422 with `RuleValidationError.to_dict()` when it fails. What is stored, and
what the streaming job runs, is `ValidatedRule.normalized`: the checked syntax tree rendered in
Spark's dialect, so the engine never runs text the validator did not see.

Checks: non-empty, bounded length and nesting, no control characters, comments, hints or ``;``;
only plain spaces between tokens and only ASCII outside quotes; string literals read exactly as
Spark reads them (``'O''Brien'`` is one literal); exactly one expression (no statements); only
schema fields or documented metadata columns; only allow-listed Spark functions, called by their
Spark names (``catalog.rules.functions``), with bounded sizes, safe regular expressions and no
clock, random or session functions; cast type parameters are small literals; no subqueries,
tables, aggregates, generators, lambdas or parameters; the result must be true/false. The one
exception to "one event at a time" is a velocity rule's window term (``catalog.rules.windows``):
an aggregate ``OVER (PARTITION BY key ORDER BY time RANGE BETWEEN INTERVAL n unit PRECEDING AND
CURRENT ROW)`` of the same entity's recent events.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from catalog.rules.conditions import describe_value, is_boolean
from catalog.rules.field_types import METADATA_COLUMNS, FieldSpec, FieldType
from catalog.rules.nodes import RuleContext, check_node
from catalog.rules.problems import RuleValidationError, clip, fail, node_position
from catalog.rules.tokens import (
    BLANK,
    CONTROL,
    DIALECT,
    SET_OPERATIONS,
    STATEMENT_TOKENS,
    check_statement,
    check_tokens,
    check_type_tokens,
    read_strings,
    tokenize,
)
from catalog.rules.windows import check_window

__all__ = ["RuleValidationError", "ValidatedRule", "render", "validate_rule"]

# Identifiers that are SQL keywords are back-quoted when the rule is rendered.
_KEYWORD_WORDS = frozenset(
    word for phrase in DIALECT.tokenizer_class.KEYWORDS for word in phrase.upper().split()
)


@dataclass(frozen=True)
class ValidatedRule:
    """An accepted rule: the submitted text, the Spark SQL to evaluate, and what it uses."""

    expression: str
    normalized: str
    columns: frozenset[str]
    functions: frozenset[str]



def validate_rule(
    expression: str,
    fields: Mapping[str, FieldType] | Sequence[FieldSpec],
    *,
    max_length: int = 4000,
    max_depth: int = 40,
    max_window_seconds: int = 86400,
) -> ValidatedRule:
    """Check that `expression` is a safe, single boolean Spark SQL expression over `fields`.

    `fields` is the pipeline schema (``{name: type}`` or `FieldSpec`s); names are matched
    ignoring case, like Spark. Metadata columns (`METADATA_COLUMNS`) may also be used.
    `max_depth` bounds the syntax-tree depth; parentheses and calls nest at most half of it.
    `max_window_seconds` bounds the length of a window term's time range.
    Raises `RuleValidationError`; returns the `ValidatedRule` otherwise.
    """
    if not isinstance(expression, str):
        raise RuleValidationError("the rule expression must be a string")
    schema = dict(fields) if isinstance(fields, Mapping) else {f.name: f.type for f in fields}
    known = {name.lower(): (name, ftype) for name, ftype in METADATA_COLUMNS.items()}
    known.update({name.lower(): (name, ftype) for name, ftype in schema.items()})

    lead = len(expression) - len(expression.lstrip(BLANK))
    text = expression.strip(BLANK)
    if not text:
        raise RuleValidationError("the rule expression is empty", None, None)
    if len(text) > max_length:
        raise RuleValidationError(
            f"the rule expression is too long ({len(text)} characters, at most {max_length})",
            None,
            lead + max_length,
        )
    bad = CONTROL.search(text)
    if bad:
        raise fail(
            f"control character U+{ord(bad.group()):04X} is not allowed",
            f"U+{ord(bad.group()):04X}",
            lead + bad.start(),
        )

    tokens = tokenize(text, lead)
    check_statement(tokens, known, lead)
    check_tokens(text, tokens, lead, max(1, max_depth // 2))
    tokens = read_strings(text, tokens, lead)
    check_type_tokens(tokens, lead)
    tree = _parse(text, tokens, lead)

    call_words = frozenset(
        tok.text.lower()
        for tok, nxt in zip(tokens, tokens[1:], strict=False)
        if nxt.token_type == TokenType.L_PAREN
    )
    ctx = RuleContext(text, tokens, known, call_words)
    stack: list[tuple[exp.Expr, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise fail(
                f"the rule is nested too deeply (more than {max_depth} levels); "
                "split it into simpler rules",
                None,
                _pos(node_position(node), lead),
            )
        if isinstance(node, exp.Window):
            problem = check_window(node, ctx, max_window_seconds)
        else:
            problem = check_node(node, ctx)
        if problem is not None:
            message, token, position = problem
            raise fail(message, token, _pos(position, lead))
        if isinstance(node, exp.Column | exp.DataType | exp.Window):
            continue  # a window term's parts were checked with it
        children = [child for child in node.iter_expressions() if child is not None]
        for child in reversed(children):
            flat = isinstance(node, exp.Binary) and type(child) is type(node)
            stack.append((child, depth if flat else depth + 1))

    types = {name.lower(): ftype for name, ftype in known.values()}
    if not is_boolean(tree, types):
        raise fail(
            "a rule must be a condition that is true or false, such as amount > 100; "
            f"{describe_value(tree, types)}",
            tree.sql(dialect="spark"),
            _pos(node_position(tree), lead),
        )
    normalized = render(tree)
    return ValidatedRule(text, normalized, frozenset(ctx.columns), frozenset(ctx.functions))



def render(tree: exp.Expr) -> str:
    """The Spark SQL text of a checked rule; identifiers that are keywords are back-quoted.

    The rendering must read back as the same tree: a rule whose text would not is refused
    rather than stored in a form that might mean something else.
    """
    for identifier in tree.find_all(exp.Identifier):
        if identifier.name.upper() in _KEYWORD_WORDS:
            identifier.set("quoted", True)
    try:
        text = tree.sql(dialect="spark")
        again = DIALECT.parse(text)
        stable = len(again) == 1 and again[0] is not None and again[0].sql(dialect="spark") == text
    except (RecursionError, ParseError, TokenError):
        raise RuleValidationError(
            "the rule is nested too deeply to be stored; split it into simpler rules"
        ) from None
    if not stable:
        raise RuleValidationError(
            "the rule could not be rendered in a form Spark reads the same way; simplify it",
            clip(text),
            None,
        )
    return text



def _pos(position: int | None, lead: int) -> int | None:
    return None if position is None else position + lead



def _statement_error(tokens: list[Token], lead: int, ambiguous: bool) -> RuleValidationError:
    first = tokens[0]
    hint = f"; if '{first.text}' is a field name, write it in backquotes: `{first.text}`"
    return fail(
        f"a rule is a condition such as amount > 100, not a SQL statement ('{first.text}')"
        + (hint if ambiguous else ""),
        first.text,
        lead + first.start,
    )



def _parse(text: str, tokens: list[Token], lead: int) -> exp.Expr:
    parser = DIALECT.parser(error_message_context=len(text) + 1)
    try:
        trees = parser.parse(tokens, text)
    except ParseError as exc:
        if tokens and tokens[0].token_type in STATEMENT_TOKENS:
            raise _statement_error(tokens, lead, ambiguous=True) from None
        raise _parse_failure(exc, lead) from None
    except RecursionError:
        raise RuleValidationError(
            "the rule is nested too deeply to be read; split it into simpler rules", None, None
        ) from None
    if len(trees) != 1 or trees[0] is None:
        raise RuleValidationError("a rule must be exactly one expression", None, None)
    tree = trees[0]
    if tokens[0].token_type in STATEMENT_TOKENS and not isinstance(tree, exp.Condition):
        raise _statement_error(tokens, lead, ambiguous=isinstance(tree, exp.Command))
    if isinstance(tree, exp.Query | exp.Command | exp.DDL | exp.DML):
        keyword = next((tok for tok in tokens if tok.token_type in SET_OPERATIONS), tokens[0])
        raise fail(
            f"'{keyword.text}' is not allowed: a rule is one condition, not a query or statement",
            keyword.text,
            lead + keyword.start,
        )
    return tree



def _parse_failure(exc: ParseError, lead: int) -> RuleValidationError:
    if not exc.errors:
        return RuleValidationError(f"syntax error: {clip(str(exc), 80)}", None, None)
    error = exc.errors[0]
    description = str(error.get("description") or "")
    highlight = str(error.get("highlight") or "")
    start = error.get("start_context")
    position = lead + len(start) if isinstance(start, str) else None
    if description.startswith("Expecting )"):
        end = None if position is None else position + len(highlight)
        return fail("syntax error: missing ')'", None, end)
    elif description.startswith("Required keyword") or description.startswith("Expected"):
        message = f"syntax error: incomplete expression near '{clip(highlight)}'"
    elif description.startswith("Invalid expression / Unexpected token"):
        message = f"syntax error: unexpected '{clip(highlight)}'"
    else:
        cleaned = re.sub(r"<class '[\w.]*?(\w+)'>", r"\1", description)
        message = f"syntax error: {clip(cleaned, 80)} near '{clip(highlight)}'"
    return fail(message, highlight or None, position)
