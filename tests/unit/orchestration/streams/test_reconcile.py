"""The watcher's decisions: desired pipelines + observed runs → launch / terminate / wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestration.streams.reconcile import (
    DesiredPipeline,
    ExternalStream,
    Launch,
    MarkFailing,
    ObservedRun,
    Policy,
    Terminate,
    Wait,
    reconcile,
    run_key,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CHANGED = NOW - timedelta(hours=1)
POLICY = Policy(max_attempts=3, backoff_base_seconds=30, backoff_max_seconds=100,
                heartbeat_seconds=60)


def pipeline(status: str = "active", version: int = 1, pid: int = 1,
             changed: datetime = CHANGED) -> DesiredPipeline:
    return DesiredPipeline(pid, status, version, changed)


def run(status: str, *, rid: str = "run-a", version: int | None = 1, ago: float = 600,
        ended_ago: float | None = None, error: str | None = None, pid: int = 1) -> ObservedRun:
    ended = NOW - timedelta(seconds=ended_ago) if ended_ago is not None else None
    return ObservedRun(rid, pid, version, status, NOW - timedelta(seconds=ago), ended, error)


def decide(pipelines, runs=(), streams=()):
    return reconcile(pipelines, runs, streams, NOW, POLICY)


def test_active_without_run_launches_with_a_stable_run_key():
    (action,) = decide([pipeline()])
    assert action == Launch(1, 1, 1, run_key(1, 1, None), "pipeline 1 is active, no stream")
    assert decide([pipeline()]) == [action]  # same facts, same key: Dagster dedupes the tick


def test_run_key_changes_once_a_run_exists():
    (action,) = decide([pipeline()], [run("SUCCESS", rid="abcdef123456")])
    assert isinstance(action, Launch)
    assert action.run_key == "pipeline-1:v1:after-abcdef12"


@pytest.mark.parametrize("status", ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"])
def test_active_with_live_run_waits(status):
    (action,) = decide([pipeline()], [run(status)])
    assert isinstance(action, Wait) and "run-a" in action.reason


@pytest.mark.parametrize("desired", ["paused", "stopped"])
def test_paused_or_stopped_terminates_live_runs(desired):
    runs = [run("STARTED", rid="r1"), run("QUEUED", rid="r2", ago=10), run("SUCCESS", rid="r0")]
    actions = decide([pipeline(desired)], runs)
    assert sorted(actions, key=lambda a: a.run_id) == [
        Terminate(1, "r1", f"pipeline is {desired}"),
        Terminate(1, "r2", f"pipeline is {desired}"),
    ]


@pytest.mark.parametrize("desired", ["paused", "stopped"])
def test_a_stream_gets_the_grace_period_to_stop_by_itself(desired):
    """Terminating a run that is just ending on its own would turn its success into a failure:
    within ``stop_grace_seconds`` of the change the watcher only waits."""
    grace = POLICY.stop_grace_seconds
    just = pipeline(desired, changed=NOW - timedelta(seconds=grace - 5))
    (action,) = decide([just], [run("STARTED", rid="r1")])
    assert isinstance(action, Wait)
    assert "stopping by itself" in action.reason and "in 6s" in action.reason
    late = pipeline(desired, changed=NOW - timedelta(seconds=grace))
    assert decide([late], [run("STARTED", rid="r1")]) == [
        Terminate(1, "r1", f"pipeline is {desired}")]


def test_an_old_schema_versions_stream_gets_the_grace_period_too():
    just = pipeline(version=2, changed=NOW - timedelta(seconds=1))
    (action,) = decide([just], [run("STARTED", version=1)])
    assert isinstance(action, Wait) and "schema version 1 -> 2" in action.reason
    (action,) = decide([just], [run("CANCELED", version=1)])  # ended: relaunch at once
    assert isinstance(action, Launch) and action.schema_version == 2


def test_paused_without_live_run_waits():
    (action,) = decide([pipeline("paused")], [run("CANCELED")])
    assert isinstance(action, Wait) and "paused" in action.reason


def test_paused_run_already_canceling_is_not_terminated_twice():
    (action,) = decide([pipeline("paused")], [run("CANCELING")])
    assert isinstance(action, Wait)


def test_schema_change_terminates_the_old_run_then_relaunches():
    (action,) = decide([pipeline(version=2)], [run("STARTED", version=1)])
    assert action == Terminate(1, "run-a", "schema version 1 -> 2")
    (action,) = decide([pipeline(version=2)], [run("CANCELING", version=1)])
    assert isinstance(action, Wait) and "stopping" in action.reason
    (action,) = decide([pipeline(version=2)], [run("CANCELED", version=1)])
    assert isinstance(action, Launch) and action.schema_version == 2 and action.attempt == 1


def test_failed_run_relaunches_after_backoff():
    failed = run("FAILURE", ended_ago=10, error="kafka down")
    (action,) = decide([pipeline()], [failed])
    assert isinstance(action, Wait) and "retry 2/3 in 21s" in action.reason
    (action,) = decide([pipeline()], [run("FAILURE", ended_ago=31, error="kafka down")])
    assert isinstance(action, Launch) and action.attempt == 2 and "kafka down" in action.reason


def test_backoff_doubles_and_is_capped():
    assert [POLICY.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


def test_gives_up_after_the_cap_and_marks_failing():
    runs = [run("FAILURE", rid=f"r{i}", ago=500 - i, ended_ago=400 - i, error=f"boom {i}")
            for i in range(3)]
    (action,) = decide([pipeline()], runs)
    assert action == MarkFailing(1, 3, "boom 2")


def test_failures_before_the_last_desired_state_change_do_not_count():
    old = [run("FAILURE", rid=f"r{i}", ago=7200 + i, ended_ago=7000) for i in range(3)]
    (action,) = decide([pipeline()], old)
    assert isinstance(action, Launch) and action.attempt == 1


def test_a_success_breaks_the_failure_streak():
    runs = [run("FAILURE", rid="r2", ago=100, ended_ago=90),
            run("SUCCESS", rid="r1", ago=200), run("FAILURE", rid="r0", ago=300)]
    (action,) = decide([pipeline()], runs)
    assert isinstance(action, Launch) and action.attempt == 2


def test_failure_without_end_time_uses_creation_time():
    (action,) = decide([pipeline()], [run("FAILURE", ago=5)])
    assert isinstance(action, Wait) and "no error recorded" in action.reason


def test_live_stream_started_outside_dagster_blocks_a_second_one():
    ext = ExternalStream(1, 7, None, NOW - timedelta(seconds=5))
    (action,) = decide([pipeline()], [], [ext])
    assert isinstance(action, Wait) and "outside Dagster" in action.reason


def test_stale_stream_rows_do_not_block():
    stale = ExternalStream(1, 7, None, NOW - timedelta(seconds=600))
    (action,) = decide([pipeline()], [run("FAILURE", ended_ago=100)], [stale])
    assert isinstance(action, Launch)


def test_stream_outliving_its_run_blocks_the_relaunch_until_it_stops():
    still = ExternalStream(1, 8, "run-a", NOW - timedelta(seconds=5))
    (action,) = decide([pipeline()], [run("CANCELED", ended_ago=100)], [still])
    assert isinstance(action, Wait) and "still finishing" in action.reason


def test_runs_of_deleted_pipelines_are_terminated():
    actions = decide([], [run("STARTED", pid=9, rid="orphan"), run("SUCCESS", pid=9, rid="x")])
    assert actions == [Terminate(9, "orphan", "pipeline 9 was deleted")]


def test_each_pipeline_is_decided_independently():
    actions = decide([pipeline(pid=1), pipeline("paused", pid=2)],
                     [run("STARTED", pid=2, rid="p2")])
    assert [type(a) for a in actions] == [Launch, Terminate]
