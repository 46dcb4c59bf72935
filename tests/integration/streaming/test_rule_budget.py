"""The runtime budget: a rule that fails, or runs past its time budget, on a sample of events is
reported with the reason (and a runaway one is cancelled); the other rules are not."""

from __future__ import annotations

import time

import pytest

from streaming.rule_budget import prepare_sample, rules_over_budget
from streaming.rules import Rule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def spark(spark_slot):
    from catalog.settings import get_settings
    from streaming.session import build_session

    local = get_settings().model_copy(update={"spark_master": "local[1]"})
    return spark_slot.acquire("rule-budget", lambda: build_session(
        "sentinel-rule-budget", settings=local, delta=False, jars=False, shuffle_partitions=1))


@pytest.fixture(scope="module")
def sample(spark):
    # On each id, '(.*a){12}$' backtracks for seconds (polynomially, degree 12) before failing.
    rows = [(f"{'a' * 21}!{n}", float(n)) for n in range(400)]
    return spark.createDataFrame(rows, "transaction_id string, amount double")


def rule(rule_id: int, expression: str) -> Rule:
    return Rule(rule_id, expression, "warning", None, None, 1)


def test_slow_and_broken_rules_are_reported_the_others_pass(spark, sample):
    fine = rule(1, "amount > 100 AND transaction_id LIKE 'aa%'")
    slow = rule(2, "transaction_id RLIKE '(.*a){12}$'")
    broken = rule(3, "no_such_field > 1")
    not_boolean_but_runs = rule(4, "amount + 1 > 0")
    started = time.monotonic()
    problems = rules_over_budget(sample, [fine, slow, broken, not_boolean_but_runs],
                                 budget_seconds=5, sample_rows=300)
    elapsed = time.monotonic() - started
    assert set(problems) == {slow, broken}, [(r.id, why) for r, why in problems.items()]
    assert "budget of 5 s" in problems[slow] and "300 recent events" in problems[slow]
    assert "no_such_field" in problems[broken]
    # The runaway evaluation was cancelled rather than run to its end (minutes on one core).
    assert elapsed < 60, elapsed
    # ... and the session is free again for the next query.
    quick = time.monotonic()
    assert spark.range(10).count() == 10 and time.monotonic() - quick < 20


def test_the_fast_rule_passes_within_a_small_budget(sample):
    assert rules_over_budget(sample, [rule(1, "amount > 1")], budget_seconds=30) == {}


def test_no_rules_no_work(sample):
    assert rules_over_budget(sample, []) == {}


def test_a_prepared_sample_serves_many_checks(sample):
    """A stream keeps its sample warm: prepared once (collected, compiled), then each check
    only times its own rules, on exactly the rows prepared."""
    prepared = prepare_sample(sample, rows=250)
    assert prepared.count == 250 and prepared.events.count() == 250
    slow = rule(2, "transaction_id RLIKE '(.*a){12}$'")
    assert set(rules_over_budget(prepared, [rule(1, "amount > 1"), slow],
                                 budget_seconds=3)) == {slow}
    assert rules_over_budget(prepared, [rule(5, "amount >= 0")], budget_seconds=30) == {}
    assert prepared.age >= 0


def test_rules_within_budget_together_are_checked_in_one_evaluation(sample, monkeypatch):
    import streaming.rule_budget as budget

    calls: list[str] = []
    real = budget._evaluate_within
    monkeypatch.setattr(budget, "_evaluate_within", lambda events, r, *a: (
        calls.append(r.expression), real(events, r, *a))[1])
    fast = [rule(i, f"amount > {i} AND transaction_id LIKE 'a%'") for i in range(1, 6)]
    assert rules_over_budget(sample, fast, budget_seconds=30, sample_rows=100) == {}
    assert len(calls) == 1 and all(r.expression in calls[0] for r in fast)
    calls.clear()
    broken = rule(9, "no_such_field > 1")
    assert set(rules_over_budget(sample, [*fast, broken], budget_seconds=30,
                                 sample_rows=100)) == {broken}
    assert len(calls) == 1 + 6  # together failed: then each alone
