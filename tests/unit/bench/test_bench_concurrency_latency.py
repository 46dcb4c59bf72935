"""Event-to-alert latency from Redis stream entries: XADD id time minus the id's send time."""

from __future__ import annotations

import pytest

from bench.concurrency import alert_latencies

pytestmark = pytest.mark.unit


def test_latency_is_xadd_time_minus_send_time_for_the_tag_only() -> None:
    entries = [
        ("1700000001500-0", {"event_id": "m-1700000000000-0"}),
        ("1700000002000-0", {"event_id": "m-1700000001000-1"}),
        ("1700000002000-1", {"event_id": "warm-1700000000000-0"}),
        ("1700000003000-0", {"event_id": "mx-1700000000000-0"}),
    ]
    assert sorted(alert_latencies(entries, "m")) == [1000, 1500]


def test_an_event_alerted_twice_counts_once_at_its_first_entry() -> None:
    entries = [
        ("1700000000400-0", {"event_id": "m-1700000000000-7"}),
        ("1700000009000-0", {"event_id": "m-1700000000000-7"}),
        ("1700000009000-1", {"rule_id": "3"}),
    ]
    assert alert_latencies(entries, "m") == [400]
