"""The throughput bench's batches: consecutive, non-overlapping offset ranges of the backlog."""

from __future__ import annotations

import pytest

from bench.throughput import batch_sizes, offset_ranges

pytestmark = pytest.mark.unit


def test_ranges_cover_the_backlog_once_in_order():
    ends = {0: 5_003, 1: 4_997}
    ranges = offset_ranges(ends, [1_000, 3_000, 3_000, 3_000])
    assert [batch_sizes(r) for r in ranges] == [1_000, 3_000, 3_000, 3_000]
    assert ranges[0][0] == {0: 0, 1: 0}
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert start == end  # the next batch starts where the last one ended
    assert ranges[-1][1] == ends


def test_each_batch_takes_every_partition_in_proportion():
    ranges = offset_ranges({0: 300, 1: 100}, [200, 200])
    assert ranges[0] == ({0: 0, 1: 0}, {0: 150, 1: 50})
    assert ranges[1] == ({0: 150, 1: 50}, {0: 300, 1: 100})


def test_more_than_the_backlog_is_refused():
    with pytest.raises(ValueError, match="holds 10"):
        offset_ranges({0: 10}, [6, 6])
