"""Day partitions of the dbt marts: partition → dbt vars, and which days a lake change rebuilds."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from orchestration.dbt.partitions import (
    DAILY_PARTITIONS,
    DAY_START,
    days_to_build,
    partition_vars,
    recent_days,
    run_request_for_days,
)
from orchestration.lake.delta_log import MAX_COMMITS_READ, commit_days, touched_days

pytestmark = pytest.mark.unit
D = date.fromisoformat


def window_vars(first: str, last: str) -> dict[str, str]:
    """The vars the partitioned op passes for a run of partitions first..last."""
    start = DAILY_PARTITIONS.time_window_for_partition_key(first).start
    end = DAILY_PARTITIONS.time_window_for_partition_key(last).end
    return partition_vars(start, end)


def test_one_day_partition_is_that_day_to_the_next() -> None:
    assert window_vars("2026-03-10", "2026-03-10") == {"min_date": "2026-03-10",
                                                       "max_date": "2026-03-11"}
    assert window_vars("2026-12-31", "2026-12-31") == {"min_date": "2026-12-31",
                                                       "max_date": "2027-01-01"}


def test_a_range_is_its_first_day_to_the_day_after_its_last() -> None:
    # 2026 is not a leap year: the day after 2026-02-28 is 2026-03-01
    assert window_vars("2026-02-27", "2026-02-28") == {"min_date": "2026-02-27",
                                                       "max_date": "2026-03-01"}
    assert window_vars(DAY_START, "2020-01-31") == {"min_date": "2020-01-01",
                                                    "max_date": "2020-02-01"}


def test_partitions_are_utc_days_from_the_start_to_today() -> None:
    keys = DAILY_PARTITIONS.get_partition_keys(
        current_time=datetime(2026, 3, 10, 0, 30, tzinfo=UTC))
    assert keys[0] == DAY_START and keys[-1] == "2026-03-10"  # today's, still in progress
    assert len(keys) == (D("2026-03-10") - D(DAY_START)).days + 1


def test_recent_days_add_yesterday_only_in_the_first_hour() -> None:
    assert recent_days(datetime(2026, 3, 10, 0, 25, tzinfo=UTC)) == {D("2026-03-09"),
                                                                     D("2026-03-10")}
    assert recent_days(datetime(2026, 3, 10, 1, 25, tzinfo=UTC)) == {D("2026-03-10")}
    assert recent_days(datetime(2026, 3, 10, 23, 59, tzinfo=UTC)) == {D("2026-03-10")}


@pytest.mark.parametrize(("touched", "now", "first", "last"), [
    (set(), datetime(2026, 11, 27, 12, tzinfo=UTC), "2026-11-27", "2026-11-27"),
    (set(), datetime(2026, 11, 27, 0, 10, tzinfo=UTC), "2026-11-26", "2026-11-27"),
    ({D("2026-11-27")}, datetime(2026, 11, 27, 12, tzinfo=UTC), "2026-11-27", "2026-11-27"),
    ({D("2026-03-10"), D("2026-03-09")}, datetime(2026, 11, 27, 12, tzinfo=UTC),
     "2026-03-09", "2026-11-27"),
    (None, datetime(2026, 11, 27, 12, tzinfo=UTC), DAY_START, "2026-11-27"),
    ({D("2019-06-01")}, datetime(2026, 11, 27, 12, tzinfo=UTC), DAY_START, "2026-11-27"),
    ({D("2030-01-01")}, datetime(2026, 11, 27, 12, tzinfo=UTC), "2026-11-27", "2026-11-27"),
])
def test_lake_change_builds_the_touched_days_and_today(touched, now, first, last) -> None:
    assert days_to_build(touched, now) == (D(first), D(last))


def test_run_request_is_one_partition_or_one_single_run_range() -> None:
    one = run_request_for_days(D("2026-03-10"), D("2026-03-10"), run_key="k", tags={"a": "b"})
    assert one.partition_key == "2026-03-10" and one.run_key == "k"
    assert ASSET_PARTITION_RANGE_START_TAG not in one.tags
    span = run_request_for_days(D("2026-03-09"), D("2026-03-11"), run_key=None, tags={"a": "b"})
    assert span.partition_key is None
    assert span.tags[ASSET_PARTITION_RANGE_START_TAG] == "2026-03-09"
    assert span.tags[ASSET_PARTITION_RANGE_END_TAG] == "2026-03-11"
    assert span.tags["a"] == "b"


def add(partition: dict | None = None, stats: dict | None = None, data_change: bool = True,
        kind: str = "add") -> str:
    action = {"path": "x.parquet", "partitionValues": partition or {}, "dataChange": data_change}
    if stats is not None:
        action["stats"] = json.dumps(stats)
    return json.dumps({kind: action})


def commit(*actions: str) -> str:
    return "\n".join([json.dumps({"commitInfo": {"operation": "WRITE"}}), *actions]) + "\n"


def test_commit_days_from_partition_values_and_event_time_stats() -> None:
    assert commit_days(commit()) == set()
    assert commit_days(commit(add({"event_date": "2026-03-10"}),
                              add({"event_date": "2026-03-12"}),
                              add({"quarantine_date": "2026-03-11"}, kind="remove"))) == {
        D("2026-03-10"), D("2026-03-11"), D("2026-03-12")}
    # silver alerts are not partitioned: the range of their event_time statistics
    stats = {"numRecords": 4, "minValues": {"event_time": "2026-03-09T23:10:00.000Z"},
             "maxValues": {"event_time": "2026-03-11T00:05:00.000Z"}}
    assert commit_days(commit(add(stats=stats))) == {D("2026-03-09"), D("2026-03-10"),
                                                     D("2026-03-11")}


def test_compaction_touches_no_day_and_unknown_days_are_none() -> None:
    optimize = commit(add({"event_date": "2026-03-10"}, data_change=False),
                      add({"event_date": "2026-03-10"}, data_change=False, kind="remove"))
    assert commit_days(optimize) == set()
    assert commit_days(commit(add(stats={"numRecords": 0}))) == set()
    assert commit_days(commit(add({"event_date": "2026-03-10"}), add())) is None
    assert commit_days(commit(add(stats={"numRecords": 3, "minValues": {}}))) is None


def write_log(table: Path, commits: dict[int, str]) -> None:
    log = table / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    for version, text in commits.items():
        (log / f"{version:020d}.json").write_text(text)


def test_touched_days_reads_only_the_commits_since_the_last_build(tmp_path: Path) -> None:
    write_log(tmp_path, {0: commit(add({"event_date": "2026-03-01"})),
                         1: commit(add({"event_date": "2026-03-02"})),
                         2: commit(add({"event_date": "2026-03-03"}))})
    assert touched_days(str(tmp_path), 0, 2) == {D("2026-03-02"), D("2026-03-03")}
    assert touched_days(str(tmp_path), 1, 2) == {D("2026-03-03")}
    assert touched_days(str(tmp_path), None, 2) == {D(f"2026-03-0{i}") for i in (1, 2, 3)}
    assert touched_days(f"file:{tmp_path}", 1, 2) == {D("2026-03-03")}


def test_touched_days_unknown_when_a_commit_is_gone_or_too_many(tmp_path: Path) -> None:
    write_log(tmp_path, {5: commit(add({"event_date": "2026-03-05"})),
                         6: commit(add({"event_date": "2026-03-06"}))})
    assert touched_days(str(tmp_path), 5, 6) == {D("2026-03-06")}
    assert touched_days(str(tmp_path), None, 6) is None  # 0..4 were cleaned up
    assert touched_days(str(tmp_path), 6 - MAX_COMMITS_READ - 1, 6) is None
