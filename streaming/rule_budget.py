"""The runtime budget of a rule: a second line of defence behind the validator.

Before a new or edited rule reaches the live engine, it is evaluated alone on a sample of recent
events. A rule that fails there, or does not finish within ``rule_budget_seconds``, is reported
with the reason so that the engine can set it to ``state=error`` (``streaming.rules.
record_states``) and keep running the others. A runaway evaluation is cancelled (its Spark job
group), so it does not keep the executors busy; cancellation takes effect between two rows,
so the cost of one row is bounded by the validator's checks (sizes, regular expressions), not
here.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark import InheritableThread, SparkContext
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from catalog.settings import get_settings
from streaming.rules import MAX_ERROR, Rule, non_null_array_sql

log = logging.getLogger(__name__)
CANCEL_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class BudgetSample:
    """Recent events held by the driver, ready to time rules on (``prepare_sample``)."""

    events: DataFrame
    count: int
    taken_at: float  # time.monotonic() when the sample was read

    @property
    def age(self) -> float:
        return time.monotonic() - self.taken_at


def prepare_sample(sample: DataFrame, rows: int | None = None) -> BudgetSample:
    """At most `rows` of `sample` (default: setting ``rule_budget_sample_rows``) collected to
    the driver and compiled once, so that a later check times only the rule's own work."""
    rows = get_settings().rule_budget_sample_rows if rows is None else rows
    # Rows held by the driver and scanned row by row: a cancelled evaluation stops at the next
    # row (a cached, columnar sample would only stop after a whole batch of rows).
    collected = sample.limit(rows).collect()
    events = sample.sparkSession.createDataFrame(collected, schema=sample.schema)
    _hits(events, "true")  # compiles the shared part of the query: not any rule's cost
    return BudgetSample(events, len(collected), time.monotonic())


def rules_over_budget(
    sample: DataFrame | BudgetSample,
    rules: Sequence[Rule],
    *,
    budget_seconds: float | None = None,
    sample_rows: int | None = None,
) -> dict[Rule, str]:
    """The rules that fail or exceed the time budget on `sample`, each with the reason.

    `sample` holds events with the pipeline's columns (e.g. recent bronze rows), either as a
    frame (at most `sample_rows` of them are used, collected first) or already prepared
    (``prepare_sample``: a long-running stream keeps one warm). Each rule is evaluated alone
    on every sampled row and must finish within `budget_seconds` (default: setting
    ``rule_budget_seconds``). Rules that pass are not in the result.
    """
    settings = get_settings()
    budget = settings.rule_budget_seconds if budget_seconds is None else budget_seconds
    if not rules:
        return {}
    prepared = sample if isinstance(sample, BudgetSample) else prepare_sample(sample, sample_rows)
    if len(rules) > 1 and _evaluate_within(prepared.events, _together(rules), budget,
                                           prepared.count) is None:
        return {}  # all of them at once within the budget: each alone is too
    problems: dict[Rule, str] = {}
    for rule in rules:
        reason = _evaluate_within(prepared.events, rule, budget, prepared.count)
        if reason is not None:
            log.warning("rule %s over budget: %s", rule.id, reason)
            problems[rule] = reason
    return problems


def _together(rules: Sequence[Rule]) -> Rule:
    """One check that evaluates every rule on every row (the common case after a start: a
    stream's rules checked at once, then one by one only when that fails or runs over)."""
    cases = ", ".join(f"CASE WHEN ({r.expression}) THEN 1 END" for r in rules)
    return Rule(0, f"size({non_null_array_sql(cases)}) > 0", "info", None,
                f"{len(rules)} rules together", 0)


def _evaluate_within(events: DataFrame, rule: Rule, budget: float, count: int) -> str | None:
    """Why `rule` cannot run on `events` within `budget` seconds (None when it can)."""
    context = events.sparkSession.sparkContext
    group = f"sentinel-rule-budget-{rule.id}-{uuid.uuid4().hex[:8]}"
    outcome: dict[str, Any] = {}

    def run() -> None:
        context.setJobGroup(group, f"rule {rule.id} budget check", interruptOnCancel=True)
        try:
            outcome["hits"] = _hits(events, rule.expression)
        except Exception as exc:  # any failure is the rule's, reported as its error
            outcome["error"] = exc

    started = time.monotonic()
    worker = InheritableThread(target=run, daemon=True)
    worker.start()
    worker.join(budget)
    if worker.is_alive():
        context.cancelJobGroup(group)
        worker.join(CANCEL_GRACE_SECONDS)
        _wait_for_tasks(context, group, CANCEL_GRACE_SECONDS)
        return (
            f"the rule did not finish within its budget of {budget:g} s on a sample of {count} "
            "recent events (cancelled); simplify it, e.g. a plainer pattern or smaller sizes"
        )
    if "error" in outcome:
        error = outcome["error"]
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"the rule failed on a sample of recent events: {type(error).__name__}: " \
            f"{first_line}"[:MAX_ERROR]
    log.info("rule %s: %s hits on %s events in %.2f s", rule.description if rule.id == 0
             else rule.id, outcome.get("hits"), count, time.monotonic() - started)
    return None


def _hits(events: DataFrame, expression: str) -> int:
    """How many rows `expression` matches, evaluating it on every row."""
    matched = F.col("m").cast("boolean")
    row = events.selectExpr(f"({expression}) AS m").agg(F.count(F.when(matched, 1))).first()
    return int(row[0]) if row is not None else 0


def _wait_for_tasks(context: SparkContext, group: str, timeout: float) -> None:
    """Wait until the cancelled group's tasks have stopped (they stop between two rows), so the
    next rule is not timed while they still hold the executors."""
    tracker = context.statusTracker()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stages = [
            stage
            for job_id in tracker.getJobIdsForGroup(group)
            if (job := tracker.getJobInfo(job_id)) is not None
            for stage in job.stageIds
        ]
        if not any(
            (info := tracker.getStageInfo(stage)) is not None and info.numActiveTasks > 0
            for stage in stages
        ):
            return
        time.sleep(0.2)
