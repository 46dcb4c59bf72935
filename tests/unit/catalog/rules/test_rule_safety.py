"""Rule safety: size bombs, backtracking regexes, clock functions, type parameters and
dialect mismatches are refused naming the offending token; their look-alikes are accepted and
stored in a form that reads back the same."""

from __future__ import annotations

import pytest

from catalog.rules.field_types import FieldSpec
from catalog.rules.regex import MAX_REPEAT_COUNT, regex_problem
from catalog.rules.validator import RuleValidationError, validate_rule
from tests import rule_cases
from tests.rule_cases import HOSTILE, LOOKALIKES

pytestmark = pytest.mark.unit

SCHEMA = [FieldSpec.model_validate(f) for f in rule_cases.SCHEMA]


def test_the_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 60 and len(LOOKALIKES) >= 40
    assert len({e for e, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("expression", "token"), HOSTILE)
def test_hostile_expressions_are_refused_naming_the_token(expression: str, token: str) -> None:
    with pytest.raises(RuleValidationError) as caught:
        validate_rule(expression, SCHEMA)
    error = caught.value
    assert error.token is not None and token.lower() in error.token.lower(), error.to_dict()
    assert "comments are not allowed" not in error.message


@pytest.mark.parametrize("expression", LOOKALIKES)
def test_lookalikes_are_accepted_and_render_stably(expression: str) -> None:
    rule = validate_rule(expression, SCHEMA)
    again = validate_rule(rule.normalized, SCHEMA)
    assert again.normalized == rule.normalized


def test_doubled_quotes_stay_one_literal() -> None:
    assert validate_rule("currency = 'O''Brien'", SCHEMA).normalized == "currency = 'O\\'Brien'"
    assert validate_rule('currency = "a""b"', SCHEMA).normalized == "currency = 'a\"b'"
    # Separate literals are still Spark's concatenation.
    assert "CONCAT" in validate_rule("currency = 'a' 'b'", SCHEMA).normalized


def test_stored_text_is_the_checked_rendering() -> None:
    rule = validate_rule("amount > 1 and currency = 'x'", SCHEMA)
    assert rule.normalized == "amount > 1 AND currency = 'x'"
    assert rule.expression == "amount > 1 and currency = 'x'"


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("EXECUTE IMMEDIATE 'SELECT 1'", "not a SQL statement ('EXECUTE"),
        ("ADD JAR '/tmp/evil.jar'", "not a SQL statement ('ADD JAR')"),
        ("now() > event_time", "compare with the event's own time fields"),
        ("transaction_id RLIKE '(a+)+$'", "write (a+)+ as a+"),
        ("length(repeat('a', 1000000000)) > 0", "at most 10,000"),
        ("currency RLIKE '\\d+'", "write '\\\\d'"),
        ("ts_or_ds_to_date(currency) > '2020-01-01'", "did you mean 'to_date'"),
    ],
)
def test_refusals_explain_themselves(expression: str, fragment: str) -> None:
    with pytest.raises(RuleValidationError) as caught:
        validate_rule(expression, SCHEMA)
    assert fragment in caught.value.message


def test_a_field_named_like_a_clock_function_is_a_field() -> None:
    schema = [*SCHEMA, FieldSpec(name="now", type="timestamp")]
    assert validate_rule("now > event_time", schema).columns == {"now", "event_time"}


@pytest.mark.parametrize(
    "pattern",
    ["(a+)+", "(a*)*", "(a|a)*", "(a|ab)*c", "\\d+\\d+", ".*.*", "(\\d+\\.?)+", "(a?){30}",
     "(\\w|\\d)+", f"a{{{MAX_REPEAT_COUNT + 1}}}", "(a)\\1", "(?<=a)b", "\\p{L}"],
)
def test_unsafe_patterns(pattern: str) -> None:
    assert regex_problem(pattern) is not None


@pytest.mark.parametrize(
    "pattern",
    ["^[A-Z]{3}$", "^\\d{4}-\\d{2}-\\d{2}$", "^(GB|FR|DE)\\d+$", "^(ab)+$", ".*x.*",
     "^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$", f"^a{{1,{MAX_REPEAT_COUNT}}}$"],
)
def test_safe_patterns(pattern: str) -> None:
    assert regex_problem(pattern) is None
