"""Day partitions of the marts: the day-grained facts (dbt ``incremental``, insert_overwrite by
their date column) are partitioned by UTC day from ``DAY_START``, today's partition included.

A run of a partition range passes the range to dbt as ``--vars {"min_date": <first day>,
"max_date": <day after the last>}`` and dbt rewrites only those days' partitions (single-run
backfills: a range is one ``dbt build``).
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from dagster import DailyPartitionsDefinition, RunRequest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

DAY_START = "2020-01-01"  # first day partition; older days are built by a full refresh only

DAILY_PARTITIONS = DailyPartitionsDefinition(start_date=DAY_START, end_offset=1)

DAILY_SELECT = "config.materialized:incremental"  # the day-grained facts


def partition_vars(start: datetime, end: datetime) -> dict[str, str]:
    """dbt ``--vars`` of a day partition (range): ``min_date`` its first day, ``max_date`` the
    day after its last (exclusive), as ISO dates."""
    return {"min_date": start.date().isoformat(), "max_date": end.date().isoformat()}


def day_key(day: date) -> str:
    return day.isoformat()


def run_request_for_days(first: date, last: date, *, run_key: str | None,
                         tags: dict[str, str]) -> RunRequest:
    """One run of ``build_lakehouse_models`` over the day partitions ``first``..``last``."""
    if first == last:
        return RunRequest(run_key=run_key, partition_key=day_key(first), tags=tags)
    return RunRequest(run_key=run_key, tags={
        **tags, ASSET_PARTITION_RANGE_START_TAG: day_key(first),
        ASSET_PARTITION_RANGE_END_TAG: day_key(last)})


NEAR_MIDNIGHT = timedelta(hours=1)


def utc_now() -> datetime:
    """The sensor's clock (a function, so that tests can fix it)."""
    return datetime.now(UTC)


def recent_days(now: datetime) -> set[date]:
    """Today (UTC), and yesterday while ``now`` is within ``NEAR_MIDNIGHT`` of its end (events
    of its last minutes may still be arriving or unbuilt)."""
    now = now.astimezone(UTC)
    return {now.date(), (now - NEAR_MIDNIGHT).date()}


def days_to_build(touched: Iterable[date] | None, now: datetime) -> tuple[date, date]:
    """The partitions (first, last, inclusive) a build after a lake change covers: every day
    the new commits touched plus ``recent_days``; ``touched=None`` (unknown) = every day
    since ``DAY_START``. Clamped to the partitions that exist (``DAY_START``..today)."""
    today = now.astimezone(UTC).date()
    start = date.fromisoformat(DAY_START)
    days = recent_days(now) | (set(touched) if touched is not None else {start})
    first, last = max(min(days), start), min(max(days), today)
    return first, max(first, last)
