"""The stream's rule watcher: the detect query runs the catalog's runnable rules.

It wakes when the API announces a rule change of the pipeline (``catalog.rule_changes``) and
polls the pipeline's ``rules_version`` every ``SENTINEL_RULE_POLL_SECONDS`` as a fallback. On
a change it analyses the rules the change brought, times each new or edited one on a warm
sample of the pipeline's latest events (``streaming.rule_budget``: over budget or failing →
``state=error``, kept out) and restarts detect with the result (``Detector.reload``), then
records the version in force on the stream's run.
"""

from __future__ import annotations

import logging
import threading
import time

from catalog.rule_changes import RuleChangeListener
from catalog.rules.velocity import split_velocity
from catalog.settings import get_settings
from streaming import progress
from streaming.detect import Detector, recent_events
from streaming.pipeline import Pipeline
from streaming.rule_budget import BudgetSample, prepare_sample, rules_over_budget
from streaming.rules import Rule, RuleCache, load_active_rules
from streaming.velocity import VelocityQuery

log = logging.getLogger("streaming.job")


class RuleWatcher:
    """Keeps the detect query's rules equal to the catalog's active rules that analyse on the
    pipeline's columns and, new or edited, ran within their budget on recent events.

    The budget sample (the pipeline's latest events, held by the driver) is kept warm: read at
    start and again when it is older than ``rule_budget_sample_refresh_seconds`` (a minute
    while it is short of ``rule_budget_sample_rows``), between rule changes, so that a change
    only pays for its own rules' check.
    """

    SHORT_SAMPLE_REFRESH_SECONDS = 60.0

    def __init__(self, pipeline: Pipeline, detector: Detector, frame, run_id: int | None,
                 interval: float, velocity: VelocityQuery | None = None) -> None:
        self.pipeline = pipeline
        self.cache = RuleCache(pipeline.id)
        self.detector = detector
        self.frame = frame
        self.run_id = run_id
        self.interval = interval
        self.velocity = velocity  # velocity rules run there (restarted alone on a change)
        self.velocity_version: int | None = None
        self.budgeted: set[tuple[int, int]] = set()
        self.sample: BudgetSample | None = None
        self._stop = threading.Event()

    def current(self) -> list[Rule]:
        """The rules to run now (the catalog is read only when its rule version moved)."""
        runnable = self.cache.refresh(self.frame)
        new = [r for r in runnable if (r.id, r.version) not in self.budgeted]
        if new:
            runnable = self._within_budget(new)
        return runnable

    def _within_budget(self, new: list[Rule]) -> list[Rule]:
        """Time ``new`` alone on the pipeline's latest events; those over budget (or failing)
        go to ``state=error`` and stay out of the detect query."""
        try:
            sample = self.sample or self.refresh_sample()
            over = rules_over_budget(sample, new)
        except Exception as exc:  # no sample (Kafka away): the rules run, the check waits
            log.warning("pipeline=%s rule budget check skipped: %s", self.pipeline.id,
                        str(exc).splitlines()[0] if str(exc) else exc)
            return self.cache.runnable
        self.budgeted.update((r.id, r.version) for r in new)
        return self.cache.reject(over) if over else self.cache.runnable

    def refresh_sample(self) -> BudgetSample:
        """Read the pipeline's latest events into a new budget sample."""
        settings = get_settings()
        rows = settings.rule_budget_sample_rows
        recent = recent_events(self.detector.spark, self.pipeline,
                               bootstrap=settings.kafka_bootstrap_servers, per_partition=rows)
        self.sample = prepare_sample(recent, rows)
        return self.sample

    def _sample_stale(self) -> bool:
        if self.sample is None:
            return True
        settings = get_settings()
        max_age = settings.rule_budget_sample_refresh_seconds
        if self.sample.count < settings.rule_budget_sample_rows:
            max_age = min(max_age, self.SHORT_SAMPLE_REFRESH_SECONDS)
        return self.sample.age > max_age

    def velocity_rules(self) -> list[Rule]:
        """The active velocity rules (read when the catalog's rule version moved)."""
        self.velocity_version, active = load_active_rules(self.pipeline.id)
        return split_velocity(active, lambda r: r.expression)[1]

    def _tick(self) -> None:
        started = time.monotonic()
        version = self.cache.version
        if self.detector.reload(self.current()):
            if self.run_id is not None:
                progress.set_rules_version(self.run_id, self.cache.version)
            log.info("pipeline=%s rules_version %s -> %s in force after %.2f s",
                     self.pipeline.id, version, self.cache.version, time.monotonic() - started)
        # After detect (whose restart is the latency-critical one): velocity rules restart
        # their own query alone.
        if self.velocity is not None and self.cache.version != self.velocity_version:
            self.velocity.reload(self.velocity_rules())
        if self._sample_stale():  # after the change is in force, never before it
            self.refresh_sample()

    def _loop(self) -> None:
        listener = RuleChangeListener(self.pipeline.id)
        try:
            while not self._stop.is_set():
                listener.wait(self.interval)  # a change announced, or the poll is due
                if self._stop.is_set():
                    break
                try:
                    self._tick()
                except Exception as exc:  # a catalog or Kafka hiccup must not stop detection
                    log.warning("rule watcher: %s", exc)
        finally:
            listener.close()

    def start(self) -> None:
        threading.Thread(target=self._loop, name="rule-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
