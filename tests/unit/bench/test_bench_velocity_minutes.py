"""bench.velocity reports the latency per minute of its load (the velocity state fills as the
windows do, so a run's first minutes are not its steady state)."""

from __future__ import annotations

import pytest

from bench.velocity import by_minute

pytestmark = pytest.mark.unit


def test_latencies_grouped_by_minute_of_the_load():
    start = 1_700_000_000_000
    first = [(start + i * 1000, 0.1 * (i + 1)) for i in range(10)]  # 0.1 .. 1.0 s
    second = [(start + 60_000 + i, 5.0) for i in range(3)]
    third = [(start + 150_000, 2.0)]  # minute 3 (no events in between)
    got = by_minute(first + second + third)

    assert [m["minute"] for m in got] == [1, 2, 3]
    assert [m["events"] for m in got] == [10, 3, 1]
    assert got[0]["p50"] == pytest.approx(0.5)  # nearest rank: the 5th of 10
    assert got[0]["p99"] == pytest.approx(1.0)
    assert (got[1]["p50"], got[1]["p99"]) == (5.0, 5.0)
    assert (got[2]["p50"], got[2]["p99"]) == (2.0, 2.0)
    assert by_minute([]) == []
