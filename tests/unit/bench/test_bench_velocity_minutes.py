"""bench.velocity reports the latency per minute of its load (the velocity state fills as the
windows do, so a run's first minutes are not its steady state) and where its batches' time
goes."""

from __future__ import annotations

import pytest

from bench.velocity import batch_profile, by_minute

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


def test_batch_profile_reports_each_state_operator_and_its_rocksdb_counters():
    """Medians per phase and, per stateful operator (in plan order), of its update and commit
    times, rows and RocksDB's counters; other custom metrics are left out."""
    def batch(ms: int, rows: int, gets: int, updates: int) -> dict:
        key = {"allUpdatesTimeMs": updates, "commitTimeMs": 2, "numRowsTotal": 0,
               "numRowsUpdated": rows, "customMetrics": {
                   "rocksdbGetCount": gets, "rocksdbGetLatency": gets // 100,
                   "rocksdbBytesCopied": 999, "numDroppedDuplicateRows": 5}}
        lateness = {"allUpdatesTimeMs": 1, "commitTimeMs": 1, "numRowsTotal": 0,
                    "numRowsUpdated": 1, "customMetrics": {}}
        return {"numInputRows": rows, "durationMs": {"triggerExecution": ms},
                "stateOperators": [key, lateness]}

    got = batch_profile([batch(700, 10, 2000, 600), batch(500, 30, 4000, 400),
                         batch(900, 20, 3000, 800)])
    assert (got["count"], got["rows"], got["ms"]) == (3, 20, {"triggerExecution": 700})
    key, lateness = got["state"]
    assert key == {"allUpdatesTimeMs": 600, "commitTimeMs": 2, "numRowsTotal": 0,
                   "numRowsUpdated": 20, "rocksdbGetCount": 3000, "rocksdbGetLatency": 30}
    assert lateness == {"allUpdatesTimeMs": 1, "commitTimeMs": 1, "numRowsTotal": 0,
                        "numRowsUpdated": 1}
    assert batch_profile([])["state"] == []
