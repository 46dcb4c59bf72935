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
Spark names (`catalog.rule_functions`), with bounded sizes, safe regular expressions and no
clock, random or session functions; cast type parameters are small literals; no subqueries,
tables, windows, aggregates, generators, lambdas or parameters; the result must be true/false.
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
# Words that start a Spark SQL statement rather than a condition (when not a field's name).
_STATEMENT_WORDS = frozenset(
    {
        "EXECUTE", "ADD", "SET", "RESET", "USE", "LIST", "REFRESH", "CACHE", "UNCACHE", "CLEAR",
        "MSCK", "REPAIR", "LOAD", "GRANT", "REVOKE", "CALL", "DECLARE", "EXPLAIN", "DESCRIBE",
        "DESC", "SHOW", "ANALYZE", "OPTIMIZE", "VACUUM", "TRUNCATE", "DROP", "CREATE", "ALTER",
        "INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE", "SELECT", "WITH", "VALUES", "FROM",
        "TABLE", "IMPORT", "EXPORT", "COPY", "COMMENT",
    }
)  # fmt: skip
# Words that continue a condition after a leading field name (``comment LIKE ...``).
_CONDITION_WORDS = frozenset(
    {
        TokenType.LIKE, TokenType.ILIKE, TokenType.RLIKE, TokenType.IRLIKE, TokenType.IS,
        TokenType.IN, TokenType.BETWEEN, TokenType.AND, TokenType.OR, TokenType.NOT,
        TokenType.DIV, TokenType.ESCAPE, TokenType.GLOB,
    }
)  # fmt: skip
# The only characters Spark and sqlglot both read as a separator between tokens.
_BLANK = " \t\n\r"
_SEPARATORS = frozenset(_BLANK)
# String forms other than plain '...' / "..." literals (raw, national, byte, hex, bit strings).
_OTHER_STRINGS = frozenset(
    {
        TokenType.RAW_STRING, TokenType.NATIONAL_STRING, TokenType.BYTE_STRING,
        TokenType.HEX_STRING, TokenType.BIT_STRING, TokenType.HEREDOC_STRING,
        TokenType.UNICODE_STRING,
    }
)  # fmt: skip
# Backslash escapes whose meaning Spark and the rendering agree on (the value each stands for).
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r",
            "%": "\\%", "_": "\\_"}  # fmt: skip
# Identifiers that are SQL keywords are back-quoted when the rule is rendered.
_KEYWORD_WORDS = frozenset(
    word for phrase in _DIALECT.tokenizer_class.KEYWORDS for word in phrase.upper().split()
)


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

    lead = len(expression) - len(expression.lstrip(_BLANK))
    text = expression.strip(_BLANK)
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
            f"U+{ord(bad.group()):04X}",
            lead + bad.start(),
        )

    tokens = _tokenize(text, lead)
    _check_statement(tokens, known, lead)
    _check_tokens(text, tokens, lead, max(1, max_depth // 2))
    tokens = _read_strings(text, tokens, lead)
    _check_type_tokens(tokens, lead)
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
        again = _DIALECT.parse(text)
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


def _check_statement(
    tokens: list[Token], known: Mapping[str, tuple[str, FieldType]], lead: int
) -> None:
    """Refuse ``EXECUTE IMMEDIATE ...``, ``ADD JAR ...`` and other statements up front."""
    first = tokens[0]
    if first.text.lower() in known:
        return
    command = first.token_type == TokenType.COMMAND
    follows = len(tokens) > 1 and tokens[1].token_type not in _CONDITION_WORDS and (
        tokens[1].text[:1].isalpha() or tokens[1].token_type == TokenType.STRING
    )
    if command or (first.text.upper() in _STATEMENT_WORDS and follows):
        words = " ".join(tok.text for tok in tokens[:2] if tok.text[:1].isalpha())
        raise _fail(
            f"a rule is a condition such as amount > 100, not a SQL statement ('{clip(words)}')",
            first.text,
            lead + first.start,
        )


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
        odd = next((c for c in gap if c not in _SEPARATORS), None)
        if odd is not None:
            raise _fail(
                f"character U+{ord(odd):04X} cannot separate words in a rule (Spark cannot "
                "read it); use a plain space",
                f"U+{ord(odd):04X}",
                lead + previous_end + 1 + gap.index(odd),
            )
        if tok is not None:
            if tok.token_type not in (TokenType.STRING, *_OTHER_STRINGS) and not tok.text.isascii():
                odd = next(c for c in tok.text if not c.isascii())
                raise _fail(
                    f"character U+{ord(odd):04X} is only allowed inside quotes",
                    f"U+{ord(odd):04X}",
                    lead + tok.start,
                )
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


def _read_strings(text: str, tokens: list[Token], lead: int) -> list[Token]:
    """String tokens carrying exactly the value Spark reads from the source.

    Spark reads a doubled quote inside a literal (``'O''Brien'``) as one quote, where sqlglot
    sees two adjacent literals; the two are merged. Backslash escapes are limited to those both
    sides read alike; raw, national, byte and hex strings are refused.
    """
    result: list[Token] = []
    for tok in tokens:
        if tok.token_type in _OTHER_STRINGS:
            raise _fail(
                "only plain string literals in single quotes are allowed, such as 'abc'",
                text[tok.start : tok.end + 1],
                lead + tok.start,
            )
        previous = result[-1] if result else None
        if (
            tok.token_type == TokenType.STRING
            and previous is not None
            and previous.token_type == TokenType.STRING
            and previous.end + 1 == tok.start
            and text[previous.start] == text[tok.start]
        ):
            previous.end = tok.end
            previous.text = _string_value(text, previous.start, previous.end, lead)
            continue
        if tok.token_type == TokenType.STRING:
            tok.text = _string_value(text, tok.start, tok.end, lead)
        result.append(tok)
    return result


def _string_value(text: str, start: int, end: int, lead: int) -> str:
    """What Spark reads from the literal ``text[start : end + 1]`` (quotes included)."""
    quote, body = text[start], text[start + 1 : end]
    value: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            escaped = body[index + 1]
            if escaped not in _ESCAPES:
                shown = "\\" + escaped
                raise _fail(
                    f"escape '{shown}' in a string is read by Spark as '{escaped}', which is "
                    f"rarely what is meant; write '\\{shown}' for a backslash (as in regular "
                    "expressions) or the character itself",
                    shown,
                    lead + start + 1 + index,
                )
            value.append(_ESCAPES[escaped])
            index += 2
        elif char == quote and body[index + 1 : index + 2] == quote:
            value.append(quote)
            index += 2
        else:
            value.append(char)
            index += 1
    return "".join(value)


def _check_type_tokens(tokens: list[Token], lead: int) -> None:
    """Cast type parameters (``AS DECIMAL(12, 2)``) may hold only whole numbers.

    sqlglot drops the parameters of some types (``VARCHAR(n)``), so they are checked here,
    before parsing, as well as on the syntax tree.
    """
    type_tokens = _DIALECT.parser_class.TYPE_TOKENS
    for index, tok in enumerate(tokens[1:-1], start=1):
        if (
            tok.token_type not in type_tokens
            or tokens[index - 1].token_type not in (TokenType.ALIAS, TokenType.DCOLON)
            or tokens[index + 1].token_type != TokenType.L_PAREN
        ):
            continue
        for inner in tokens[index + 2 :]:
            if inner.token_type == TokenType.R_PAREN:
                break
            if inner.token_type not in (TokenType.NUMBER, TokenType.COMMA):
                raise _fail(
                    f"type parameters of {tok.text.upper()} must be whole numbers such as "
                    f"DECIMAL(12, 2); '{clip(inner.text)}' is not allowed there",
                    inner.text,
                    lead + inner.start,
                )


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
