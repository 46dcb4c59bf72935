"""Desired state (the ``pipelines`` table) + observed runs → what the watcher must do.

Pure functions, no Dagster and no database: the sensor gathers the facts, this module decides.
Rules, per pipeline:

- paused/stopped → its stream stops itself after its batch; live runs still there
  ``stop_grace_seconds`` after the change are terminated (terminating a run that is just
  ending on its own would turn its success into a failure);
- active, a live run on an older schema version → the same, then relaunched once it ended;
- active, a live run → nothing; a stream still heart-beating in ``stream_runs`` (started outside
  Dagster, or whose run ended before its process did) → nothing: never two streams at once;
- active, no live run → launch; after failures, relaunch with exponential backoff, and past
  ``max_attempts`` consecutive failures mark the pipeline failing instead. Failures count only
  since the pipeline's last desired-state change, so pause + resume (or a schema change) resets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

LIVE_STATUSES = frozenset({"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"})
CANCELING = "CANCELING"
FAILURE = "FAILURE"


@dataclass(frozen=True)
class DesiredPipeline:
    """A row of ``pipelines``: what the user asked for."""

    id: int
    status: str  # active | paused | stopped
    schema_version: int
    updated_at: datetime


@dataclass(frozen=True)
class ObservedRun:
    """A ``stream_pipeline`` run of one pipeline, as the Dagster instance reports it."""

    run_id: str
    pipeline_id: int
    schema_version: int | None
    status: str  # DagsterRunStatus value
    created_at: datetime
    ended_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class ExternalStream:
    """An open ``stream_runs`` row (no ``ended_at``): a stream is (or was recently) alive."""

    pipeline_id: int
    stream_run_id: int
    dagster_run_id: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Policy:
    """How hard the watcher tries: relaunch cap, backoff, and a live stream's heartbeat."""

    max_attempts: int = 5
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 600.0
    heartbeat_seconds: float = 60.0
    stop_grace_seconds: float = 90.0

    def backoff(self, failures: int) -> timedelta:
        """Wait before relaunch number ``failures + 1`` (30 s, 60 s, 120 s … up to the max)."""
        seconds = self.backoff_base_seconds * 2 ** max(failures - 1, 0)
        return timedelta(seconds=min(seconds, self.backoff_max_seconds))


@dataclass(frozen=True)
class Launch:
    pipeline_id: int
    schema_version: int
    attempt: int
    run_key: str
    reason: str


@dataclass(frozen=True)
class Terminate:
    pipeline_id: int
    run_id: str
    reason: str


@dataclass(frozen=True)
class MarkFailing:
    pipeline_id: int
    attempts: int
    error: str


@dataclass(frozen=True)
class Wait:
    """Nothing to do for this pipeline now; ``reason`` says why (becomes the skip reason)."""

    pipeline_id: int
    reason: str


Action = Launch | Terminate | MarkFailing | Wait


GAVE_UP = re.compile(r"^gave up after \d+ failed attempts: ")


def error_summary(error: str, limit: int = 300) -> str:
    """The line of an error text that says what went wrong.

    A Spark failure recorded through py4j reads ``Py4JJavaError: An error occurred while
    calling o35.start.`` first; the Java exception (the actual reason) is on the next line.
    """
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    if not lines:
        return ""
    first = GAVE_UP.sub("", lines[0])  # the watcher's own verdict is not repeated
    if "An error occurred while calling" in first and len(lines) > 1:
        first = lines[1].lstrip(": ").strip() or first
    return first[:limit]


def run_key(pipeline_id: int, schema_version: int, previous_run_id: str | None) -> str:
    """Stable across ticks until a new run exists: the same decision never launches twice."""
    after = previous_run_id[:8] if previous_run_id else "none"
    return f"pipeline-{pipeline_id}:v{schema_version}:after-{after}"


def _consecutive_failures(p: DesiredPipeline, runs: Sequence[ObservedRun]) -> list[ObservedRun]:
    failed: list[ObservedRun] = []
    for r in runs:  # newest first
        if r.created_at < p.updated_at or r.schema_version != p.schema_version:
            break
        if r.status != FAILURE:
            break
        failed.append(r)
    return failed


def _alive_stream(
    p: DesiredPipeline, streams: Iterable[ExternalStream], now: datetime, policy: Policy
) -> ExternalStream | None:
    """An open stream row with a recent heartbeat: someone is still writing this pipeline."""
    fresh = now - timedelta(seconds=policy.heartbeat_seconds)
    for s in streams:
        if s.pipeline_id == p.id and s.updated_at >= fresh:
            return s
    return None


def _stop(p: DesiredPipeline, ending: Sequence[ObservedRun], why: Callable[[ObservedRun], str],
          grace: timedelta) -> list[Action]:
    """Terminate ``ending`` (live runs the change ends), but only once ``grace`` has run out:
    until then their streams are stopping by themselves."""
    if ending and grace > timedelta(0):
        r, left = ending[0], int(grace.total_seconds()) + 1
        return [Wait(p.id, f"pipeline {p.id}: run {r.run_id[:8]} stopping by itself ({why(r)}); "
                           f"terminated if still live in {left}s")]
    return [Terminate(p.id, r.run_id, why(r)) for r in ending]


def reconcile_pipeline(
    p: DesiredPipeline,
    runs: Sequence[ObservedRun],
    streams: Iterable[ExternalStream],
    now: datetime,
    policy: Policy,
) -> list[Action]:
    """The actions for one pipeline; ``runs`` are its runs, newest first."""
    live = [r for r in runs if r.status in LIVE_STATUSES]
    grace = p.updated_at + timedelta(seconds=policy.stop_grace_seconds) - now
    if p.status != "active":
        stop = _stop(p, [r for r in live if r.status != CANCELING],
                     lambda r: f"pipeline is {p.status}", grace)
        return stop or [Wait(p.id, f"pipeline {p.id} is {p.status}: no stream to stop")]
    outdated = [r for r in live if r.schema_version != p.schema_version]
    stop = _stop(p, [r for r in outdated if r.status != CANCELING],
                 lambda r: f"schema version {r.schema_version} -> {p.schema_version}", grace)
    if stop:
        return stop
    if live:
        r = live[0]
        what = "stopping" if r.status == CANCELING or outdated else r.status.lower()
        return [Wait(p.id, f"pipeline {p.id}: run {r.run_id[:8]} {what}")]
    alive = _alive_stream(p, streams, now, policy)
    if alive is not None and alive.dagster_run_id in {r.run_id for r in runs}:
        return [Wait(p.id, f"pipeline {p.id}: the stream of run {alive.dagster_run_id[:8]} is "
                           f"still finishing (stream_runs #{alive.stream_run_id})")]
    if alive is not None:
        return [Wait(p.id, f"pipeline {p.id}: stream started outside Dagster is live "
                           f"(stream_runs #{alive.stream_run_id}); not starting a second one")]
    previous = runs[0].run_id if runs else None
    key = run_key(p.id, p.schema_version, previous)
    failed = _consecutive_failures(p, runs)
    if not failed:
        return [Launch(p.id, p.schema_version, 1, key, f"pipeline {p.id} is active, no stream")]
    last = failed[0]
    error = last.error or "run failed (no error recorded)"
    if len(failed) >= policy.max_attempts:
        return [MarkFailing(p.id, len(failed), error)]
    due = (last.ended_at or last.created_at) + policy.backoff(len(failed))
    if now < due:
        wait = int((due - now).total_seconds()) + 1
        return [Wait(p.id, f"pipeline {p.id}: {len(failed)} failure(s), retry "
                           f"{len(failed) + 1}/{policy.max_attempts} in {wait}s: "
                           f"{error_summary(error)}")]
    return [Launch(p.id, p.schema_version, len(failed) + 1, key,
                   f"relaunch after {len(failed)} failure(s): {error_summary(error)}")]


def reconcile(
    pipelines: Iterable[DesiredPipeline],
    runs: Iterable[ObservedRun],
    streams: Iterable[ExternalStream],
    now: datetime,
    policy: Policy | None = None,
) -> list[Action]:
    """Every pipeline's actions; runs of pipelines that no longer exist are terminated."""
    policy = policy or Policy()
    by_pipeline: dict[int, list[ObservedRun]] = {}
    for r in sorted(runs, key=lambda r: r.created_at, reverse=True):
        by_pipeline.setdefault(r.pipeline_id, []).append(r)
    stream_list = list(streams)
    actions: list[Action] = []
    seen: set[int] = set()
    for p in sorted(pipelines, key=lambda p: p.id):
        seen.add(p.id)
        actions += reconcile_pipeline(p, by_pipeline.get(p.id, []), stream_list, now, policy)
    for pid, rs in sorted(by_pipeline.items()):
        if pid not in seen:
            actions += [Terminate(pid, r.run_id, f"pipeline {pid} was deleted")
                        for r in rs if r.status in LIVE_STATUSES and r.status != CANCELING]
    return actions
