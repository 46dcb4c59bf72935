"""Which archive batches run small (one task, writes in turn): after a small batch, unless a
burst has reached the topic since; a broker that cannot say makes the batch run wide."""

from __future__ import annotations

import pytest

from streaming.archive import BatchContext, _arrived, is_small
from streaming.pipeline import Paths, Pipeline

pytestmark = pytest.mark.unit


def context(ends: list[int | Exception]) -> BatchContext:
    pipeline = Pipeline(id=1, name="p", topic="t", status="active", schema=[],
                        schema_version=1, key_field=None)
    feed = iter(ends)

    def topic_end() -> int:
        value = next(feed)
        if isinstance(value, Exception):
            raise value
        return value

    return BatchContext(pipeline, Paths("/tmp/w", "p"), "a", small_batch_rows=1000,
                        topic_end=topic_end)


def judge(ctx: BatchContext, rows: int) -> bool:
    """One batch: judged, then its row count recorded as ``process_batch`` does."""
    small = is_small(ctx, _arrived(ctx))
    ctx.last = {"rows": rows}
    return small


def test_first_batch_runs_wide_then_small_batches_stay_small() -> None:
    ctx = context([100, 200, 300])
    assert [judge(ctx, 100), judge(ctx, 100), judge(ctx, 100)] == [False, True, True]


def test_a_burst_after_a_small_batch_runs_wide() -> None:
    # 100 records, then 100, then 50,000 arrive before the third batch.
    ctx = context([100, 200, 50_200, 50_300])
    assert [judge(ctx, 100), judge(ctx, 100), judge(ctx, 50_000), judge(ctx, 100)] \
        == [False, True, False, False]


def test_unknown_end_offsets_run_the_batch_wide() -> None:
    ctx = context([100, 200, ConnectionError("broker down"), 400, 500])
    assert [judge(ctx, 100) for _ in range(5)] == [False, True, False, False, True]


def test_without_offsets_the_previous_batch_decides() -> None:
    ctx = context([])
    ctx.topic_end = None
    assert [judge(ctx, 100), judge(ctx, 5000), judge(ctx, 100)] == [False, True, False]
