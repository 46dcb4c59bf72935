"""The rule's tokens, checked before parsing: statements, comments, separators, strings.

sqlglot silently drops or recurses on some input (comments, hints, ``;``, deep nesting) and
reads some literals differently from Spark (``'O''Brien'``, backslash escapes); these checks
refuse such text, or fix the token, so the parser sees exactly what Spark would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from catalog.rules.field_types import FieldType
from catalog.rules.problems import RuleValidationError, clip, fail

DIALECT = Dialect.get_or_raise("spark")


# Control characters except tab, newline and carriage return; bidi overrides ("Trojan source").
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


STATEMENT_TOKENS = frozenset(DIALECT.parser_class.STATEMENT_PARSERS) | {
    TokenType.SELECT,
    TokenType.WITH,
    TokenType.VALUES,
    TokenType.COMMAND,
    TokenType.SHOW,
    TokenType.FROM,
}


SET_OPERATIONS = frozenset({TokenType.UNION, TokenType.EXCEPT, TokenType.INTERSECT})


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
BLANK = " \t\n\r"


_SEPARATORS = frozenset(BLANK)


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


def tokenize(text: str, lead: int) -> list[Token]:
    try:
        return DIALECT.tokenize(text)
    except TokenError:
        pass
    quote = _unterminated(text)
    if quote is None:
        raise RuleValidationError("the rule expression could not be read (tokenizer error)")
    kind, position = quote
    raise fail(f"unterminated {kind}", text[position : position + 10], lead + position)



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



def check_statement(
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
        raise fail(
            f"a rule is a condition such as amount > 100, not a SQL statement ('{clip(words)}')",
            first.text,
            lead + first.start,
        )



def check_tokens(text: str, tokens: list[Token], lead: int, max_nesting: int) -> None:
    """Reject what sqlglot would silently drop or recurse on: comments, hints, ``;``, nesting."""
    previous_end = -1
    for tok in [*tokens, None]:
        start = tok.start if tok is not None else len(text)
        gap = text[previous_end + 1 : start]
        if gap.strip():
            offset = previous_end + 1 + (len(gap) - len(gap.lstrip()))
            hint = text.startswith("/*+", offset)
            what = "optimizer hints are" if hint else "comments are"
            raise fail(
                f"{what} not allowed in a rule (use the rule description instead)",
                text[offset : offset + 3],
                lead + offset,
            )
        odd = next((c for c in gap if c not in _SEPARATORS), None)
        if odd is not None:
            raise fail(
                f"character U+{ord(odd):04X} cannot separate words in a rule (Spark cannot "
                "read it); use a plain space",
                f"U+{ord(odd):04X}",
                lead + previous_end + 1 + gap.index(odd),
            )
        if tok is not None:
            if tok.token_type not in (TokenType.STRING, *_OTHER_STRINGS) and not tok.text.isascii():
                odd = next(c for c in tok.text if not c.isascii())
                raise fail(
                    f"character U+{ord(odd):04X} is only allowed inside quotes",
                    f"U+{ord(odd):04X}",
                    lead + tok.start,
                )
            previous_end = tok.end
    depth = 0
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            raise fail(
                "';' is not allowed: a rule is a single expression, not SQL statements",
                ";",
                lead + tok.start,
            )
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
            if depth > max_nesting:
                raise fail(
                    f"parentheses and function calls are nested too deeply (more than "
                    f"{max_nesting} levels); split it into simpler rules",
                    tok.text,
                    lead + tok.start,
                )
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1



def read_strings(text: str, tokens: list[Token], lead: int) -> list[Token]:
    """String tokens carrying exactly the value Spark reads from the source.

    Spark reads a doubled quote inside a literal (``'O''Brien'``) as one quote, where sqlglot
    sees two adjacent literals; the two are merged. Backslash escapes are limited to those both
    sides read alike; raw, national, byte and hex strings are refused.
    """
    result: list[Token] = []
    for tok in tokens:
        if tok.token_type in _OTHER_STRINGS:
            raise fail(
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
                raise fail(
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



def check_type_tokens(tokens: list[Token], lead: int) -> None:
    """Cast type parameters (``AS DECIMAL(12, 2)``) may hold only whole numbers.

    sqlglot drops the parameters of some types (``VARCHAR(n)``), so they are checked here,
    before parsing, as well as on the syntax tree.
    """
    type_tokens = DIALECT.parser_class.TYPE_TOKENS
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
                raise fail(
                    f"type parameters of {tok.text.upper()} must be whole numbers such as "
                    f"DECIMAL(12, 2); '{clip(inner.text)}' is not allowed there",
                    inner.text,
                    lead + inner.start,
                )
