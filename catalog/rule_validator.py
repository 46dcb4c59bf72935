"""Validation of fraud-rule expressions before they are stored (DESIGN §5).

A rule is one Spark SQL boolean expression over the fields of one event, e.g.
``amount > 5000 AND currency IN ('XX', 'YY')``. The API calls `validate_rule` on every create or
edit and answers HTTP 422 with `RuleValidationError.to_dict()` when it fails; the streaming job
evaluates `ValidatedRule.normalized` (sqlglot's Spark rendering, identifiers back-quoted).

Checks: non-empty, bounded length and nesting, no control characters, comments, hints or ``;``;
exactly one expression (no statements); only schema fields or documented metadata columns;
only allow-listed functions (`catalog.rule_functions`); no subqueries, tables, windows,
aggregates, generators, lambdas or parameters; and the result must be true/false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from catalog.field_types import METADATA_COLUMNS, FieldSpec, FieldType
from catalog.rule_functions import (
    RuleContext,
    check_node,
    clip,
    describe_value,
    is_boolean,
    node_position,
)

_DIALECT = Dialect.get_or_raise("spark")
# Control characters except tab, newline and carriage return; bidi overrides ("Trojan source").
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_STATEMENT_TOKENS = frozenset(_DIALECT.parser_class.STATEMENT_PARSERS) | {
    TokenType.SELECT,
    TokenType.WITH,
    TokenType.VALUES,
    TokenType.COMMAND,
    TokenType.SHOW,
    TokenType.FROM,
}
_SET_OPERATIONS = frozenset({TokenType.UNION, TokenType.EXCEPT, TokenType.INTERSECT})


class RuleValidationError(ValueError):
    """A rule expression was rejected: what is wrong, the offending token and its position.

    `position` is the 0-based character offset in the expression as submitted (None when it
    cannot be told). `message` is meant for the API user and never echoes long input.
    """

    def __init__(self, message: str, token: str | None = None, position: int | None = None):
        super().__init__(message)
        self.message = message
        self.token = token
        self.position = position

    def to_dict(self) -> dict[str, str | int | None]:
        """The JSON error body returned with HTTP 422."""
        return {"message": self.message, "token": self.token, "position": self.position}


@dataclass(frozen=True)
class ValidatedRule:
    """An accepted rule: the submitted text, the Spark SQL to evaluate, and what it uses."""

    expression: str
    normalized: str
    columns: frozenset[str]
    functions: frozenset[str]


def _fail(message: str, token: str | None, position: int | None) -> RuleValidationError:
    where = f" (at position {position})" if position is not None else ""
    return RuleValidationError(message + where, clip(token) if token else token, position)


def validate_rule(
    expression: str,
    fields: Mapping[str, FieldType] | Sequence[FieldSpec],
    *,
    max_length: int = 4000,
    max_depth: int = 40,
) -> ValidatedRule:
    """Check that `expression` is a safe, single boolean Spark SQL expression over `fields`.

    `fields` is the pipeline schema (``{name: type}`` or `FieldSpec`s); names are matched
    ignoring case, like Spark. Metadata columns (`METADATA_COLUMNS`) may also be used.
    `max_depth` bounds the syntax-tree depth; parentheses and calls nest at most half of it.
    Raises `RuleValidationError`; returns the `ValidatedRule` otherwise.
    """
    if not isinstance(expression, str):
        raise RuleValidationError("the rule expression must be a string")
    schema = dict(fields) if isinstance(fields, Mapping) else {f.name: f.type for f in fields}
    known = {name.lower(): (name, ftype) for name, ftype in METADATA_COLUMNS.items()}
    known.update({name.lower(): (name, ftype) for name, ftype in schema.items()})

    lead = len(expression) - len(expression.lstrip())
    text = expression.strip()
    if not text:
        raise RuleValidationError("the rule expression is empty", None, None)
    if len(text) > max_length:
        raise RuleValidationError(
            f"the rule expression is too long ({len(text)} characters, at most {max_length})",
            None,
            lead + max_length,
        )
    bad = _CONTROL.search(text)
    if bad:
        raise _fail(
            f"control character U+{ord(bad.group()):04X} is not allowed",
            None,
            lead + bad.start(),
        )

    tokens = _tokenize(text, lead)
    _check_tokens(text, tokens, lead, max(1, max_depth // 2))
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
            raise _fail(
                f"the rule is nested too deeply (more than {max_depth} levels); "
                "split it into simpler rules",
                None,
                _pos(node_position(node), lead),
            )
        problem = check_node(node, ctx)
        if problem is not None:
            message, token, position = problem
            raise _fail(message, token, _pos(position, lead))
        if isinstance(node, exp.Column | exp.DataType):
            continue
        children = [child for child in node.iter_expressions() if child is not None]
        for child in reversed(children):
            flat = isinstance(node, exp.Binary) and type(child) is type(node)
            stack.append((child, depth if flat else depth + 1))

    types = {name.lower(): ftype for name, ftype in known.values()}
    if not is_boolean(tree, types):
        raise _fail(
            "a rule must be a condition that is true or false, such as amount > 100; "
            f"{describe_value(tree, types)}",
            tree.sql(dialect="spark"),
            _pos(node_position(tree), lead),
        )
    try:
        normalized = tree.sql(dialect="spark", identify=True)
    except RecursionError:
        raise RuleValidationError("the rule is nested too deeply", None, None) from None
    return ValidatedRule(text, normalized, frozenset(ctx.columns), frozenset(ctx.functions))


def _pos(position: int | None, lead: int) -> int | None:
    return None if position is None else position + lead


def _tokenize(text: str, lead: int) -> list[Token]:
    try:
        return _DIALECT.tokenize(text)
    except TokenError:
        pass
    quote = _unterminated(text)
    if quote is None:
        raise RuleValidationError("the rule expression could not be read (tokenizer error)")
    kind, position = quote
    raise _fail(f"unterminated {kind}", text[position : position + 10], lead + position)


def _unterminated(text: str) -> tuple[str, int] | None:
    """The kind and start of an unclosed quote or block comment, scanning like Spark's lexer."""
    index = 0
    while index < len(text):
        char = text[index]
        if text.startswith("/*", index):
            end = text.find("*/", index + 2)
            if end < 0:
                return "comment '/*'", index
            index = end + 2
            continue
        if char in "'\"`":
            close = index + 1
            while close < len(text) and text[close] != char:
                close += 2 if text[close] == "\\" and char != "`" else 1
            if close >= len(text):
                kind = "identifier (missing closing `)" if char == "`" else "string"
                return f"{kind} starting with {char}", index
            index = close + 1
            continue
        index += 1
    return None


def _check_tokens(text: str, tokens: list[Token], lead: int, max_nesting: int) -> None:
    """Reject what sqlglot would silently drop or recurse on: comments, hints, ``;``, nesting."""
    previous_end = -1
    for tok in [*tokens, None]:
        start = tok.start if tok is not None else len(text)
        gap = text[previous_end + 1 : start]
        if gap.strip():
            offset = previous_end + 1 + (len(gap) - len(gap.lstrip()))
            hint = text.startswith("/*+", offset)
            what = "optimizer hints are" if hint else "comments are"
            raise _fail(
                f"{what} not allowed in a rule (use the rule description instead)",
                text[offset : offset + 3],
                lead + offset,
            )
        if tok is not None:
            previous_end = tok.end
    depth = 0
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            raise _fail(
                "';' is not allowed: a rule is a single expression, not SQL statements",
                ";",
                lead + tok.start,
            )
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
            if depth > max_nesting:
                raise _fail(
                    f"parentheses and function calls are nested too deeply (more than "
                    f"{max_nesting} levels); split it into simpler rules",
                    tok.text,
                    lead + tok.start,
                )
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1


def _statement_error(tokens: list[Token], lead: int, ambiguous: bool) -> RuleValidationError:
    first = tokens[0]
    hint = f"; if '{first.text}' is a field name, write it in backquotes: `{first.text}`"
    return _fail(
        f"a rule is a condition such as amount > 100, not a SQL statement ('{first.text}')"
        + (hint if ambiguous else ""),
        first.text,
        lead + first.start,
    )


def _parse(text: str, tokens: list[Token], lead: int) -> exp.Expr:
    parser = _DIALECT.parser(error_message_context=len(text) + 1)
    try:
        trees = parser.parse(tokens, text)
    except ParseError as exc:
        if tokens and tokens[0].token_type in _STATEMENT_TOKENS:
            raise _statement_error(tokens, lead, ambiguous=True) from None
        raise _parse_failure(exc, lead) from None
    except RecursionError:
        raise RuleValidationError(
            "the rule is nested too deeply to be read; split it into simpler rules", None, None
        ) from None
    if len(trees) != 1 or trees[0] is None:
        raise RuleValidationError("a rule must be exactly one expression", None, None)
    tree = trees[0]
    if tokens[0].token_type in _STATEMENT_TOKENS and not isinstance(tree, exp.Condition):
        raise _statement_error(tokens, lead, ambiguous=isinstance(tree, exp.Command))
    if isinstance(tree, exp.Query | exp.Command | exp.DDL | exp.DML):
        keyword = next((tok for tok in tokens if tok.token_type in _SET_OPERATIONS), tokens[0])
        raise _fail(
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
        return _fail("syntax error: missing ')'", None, end)
    elif description.startswith("Required keyword") or description.startswith("Expected"):
        message = f"syntax error: incomplete expression near '{clip(highlight)}'"
    elif description.startswith("Invalid expression / Unexpected token"):
        message = f"syntax error: unexpected '{clip(highlight)}'"
    else:
        cleaned = re.sub(r"<class '[\w.]*?(\w+)'>", r"\1", description)
        message = f"syntax error: {clip(cleaned, 80)} near '{clip(highlight)}'"
    return _fail(message, highlight or None, position)
