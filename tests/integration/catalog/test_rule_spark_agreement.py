"""The validator and Spark agree: every accepted rule parses and analyses in a real Spark session
as a true/false condition, and the text stored (the validator's Spark rendering) evaluates on
sample events exactly like the text submitted and like an independent evaluation (results worked
out by hand for fixed rules, a plain-Python evaluator for generated ones)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.rules.field_types import FieldSpec
from catalog.rules.validator import validate_rule
from tests.rule_cases import EXPECTED, LOOKALIKES, SAMPLE_ROWS, SCHEMA

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

FIELDS = [FieldSpec.model_validate(f) for f in SCHEMA]


@pytest.fixture(scope="module")
def spark(spark_slot):
    from catalog.settings import get_settings
    from streaming.session import build_session

    local = get_settings().model_copy(update={"spark_master": "local[1]"})
    return spark_slot.acquire("rule-agreement", lambda: build_session(
        "sentinel-rule-agreement", settings=local, delta=False, jars=False,
        shuffle_partitions=1))


@pytest.fixture(scope="module")
def events(spark):
    ddl = ", ".join(f"`{f.name}` {f.type.spark_type_name}" for f in FIELDS)
    rows = [tuple(row[f.name] for f in FIELDS) for row in SAMPLE_ROWS]
    return spark.createDataFrame(rows, ddl).cache()


def evaluate(events, *expressions: str) -> list[list[bool | None]]:
    """Per expression, its value on each sample row (in row order), checking it is boolean."""
    from pyspark.sql.types import BooleanType

    frame = events.selectExpr(*[f"({e}) AS m{i}" for i, e in enumerate(expressions)])
    for field in frame.schema.fields:
        assert isinstance(field.dataType, BooleanType), (expressions, frame.schema)
    rows = frame.collect()
    return [[row[i] for row in rows] for i in range(len(expressions))]


def test_spark_reads_the_sample_rows_as_given(events):
    assert [r["currency"] for r in events.collect()] == [r["currency"] for r in SAMPLE_ROWS]


@pytest.mark.parametrize("expression", LOOKALIKES)
def test_accepted_lookalike_means_the_same_in_spark_as_stored(events, expression):
    stored = validate_rule(expression, FIELDS).normalized
    submitted, rendered = evaluate(events, expression, stored)
    assert rendered == submitted, (stored, submitted, rendered)
    if expression in EXPECTED:
        assert submitted == EXPECTED[expression]


def test_hand_computed_cases_are_lookalikes():
    assert set(EXPECTED) <= set(LOOKALIKES) and len(EXPECTED) >= 20


# ---- generated rules: a small grammar with a plain-Python meaning ---------------------------

Row = dict[str, Any]


@dataclass(frozen=True)
class Generated:
    sql: str
    meaning: Callable[[Row], bool | None]


POOL = ["USD", "O'Brien", 'O"Brien', "it's", "café", "a\u2029b", "back\\slash", "50%_off",
        "line1\nline2", "tab\there"]
TEXT = st.one_of(st.sampled_from(POOL),
                 st.text(alphabet="ab'\"\\%_ é\u2029\n", min_size=0, max_size=6))


def quoted(value: str, style: int) -> str:
    """`value` as a Spark string literal, in one of the ways a user may write it."""
    body = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    if style == 0:
        return "'" + body.replace("'", "''") + "'"
    if style == 1:
        return "'" + body.replace("'", "\\'") + "'"
    return '"' + body.replace('"', '""') + '"'


def lpad(text: str, length: int, pad: str) -> str:
    if length <= len(text):
        return text[:length]
    fill = (pad * length)[: length - len(text)] if pad else ""
    return fill + text if pad else text


def _eq(field: str, value: str) -> Callable[[Row], bool | None]:
    return lambda row: None if row[field] is None else row[field] == value


@st.composite
def atoms(draw) -> Generated:
    kind = draw(st.integers(0, 6))
    style = draw(st.integers(0, 2))
    if kind == 0:
        field = draw(st.sampled_from(["currency", "description"]))
        value = draw(TEXT)
        return Generated(f"{field} = {quoted(value, style)}", _eq(field, value))
    if kind == 1:
        number = draw(st.integers(-5, 200))
        return Generated(f"amount > {number}", lambda row: row["amount"] > number)
    if kind == 2:
        return Generated("is_new_wallet", lambda row: row["is_new_wallet"])
    if kind == 3:
        field = draw(st.sampled_from(["currency", "description", "signup_date"]))
        return Generated(f"{field} IS NULL", lambda row: row[field] is None)
    if kind == 4:
        length = draw(st.integers(0, 9))
        pad = draw(st.sampled_from(["0", "*", "ab", "'"]))
        value = draw(TEXT)

        def padded(row: Row) -> bool | None:
            return None if row["currency"] is None else lpad(row["currency"], length, pad) == value

        return Generated(
            f"lpad(currency, {length}, {quoted(pad, style)}) = {quoted(value, style)}", padded)
    if kind == 5:
        pattern = draw(st.sampled_from(["^O", "'", "Bri", "^[A-Z]{3}$", "\\d", "^(US|GB)",
                                        "[\"']", "a$"]))
        compiled = re.compile(pattern)

        def matches(row: Row) -> bool | None:
            return None if row["currency"] is None else bool(compiled.search(row["currency"]))

        return Generated(f"currency RLIKE {quoted(pattern, style)}", matches)
    fragment = draw(st.text(alphabet="ab'\"é ", min_size=0, max_size=3))

    def contains(row: Row) -> bool | None:
        return None if row["description"] is None else fragment in row["description"]

    return Generated(f"description LIKE {quoted('%' + fragment + '%', style)}", contains)


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def combine(children: st.SearchStrategy[Generated]) -> st.SearchStrategy[Generated]:
    def join(parts: tuple[str, Generated, Generated]) -> Generated:
        op, left, right = parts
        if op == "NOT":
            return Generated(f"NOT ({left.sql})",
                             lambda row: None if (v := left.meaning(row)) is None else not v)
        logic = _and if op == "AND" else _or
        return Generated(f"({left.sql}) {op} ({right.sql})",
                         lambda row: logic(left.meaning(row), right.meaning(row)))

    return st.tuples(st.sampled_from(["AND", "OR", "NOT"]), children, children).map(join)


RULES = st.recursive(atoms(), combine, max_leaves=4)


def test_generated_rules_agree_with_spark_and_an_independent_evaluation(events):
    seen: list[str] = []

    @settings(max_examples=120, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(rule=RULES)
    def check(rule: Generated) -> None:
        stored = validate_rule(rule.sql, FIELDS).normalized
        submitted, rendered = evaluate(events, rule.sql, stored)
        expected = [rule.meaning(row) for row in SAMPLE_ROWS]
        assert submitted == expected, (rule.sql, submitted, expected)
        assert rendered == expected, (rule.sql, stored, rendered, expected)
        seen.append(rule.sql)

    check()
    assert len(set(seen)) >= 60  # not vacuous: many distinct rules went through Spark
