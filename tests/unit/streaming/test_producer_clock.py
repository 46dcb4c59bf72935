"""Event times of the generator: fixed history for tests, the wall clock for live demos."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import streaming.pipeline
from streaming import producer
from streaming.producer import BACKFILL_START, EventClock, generate_events

pytestmark = pytest.mark.unit

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "float", "nullable": False},
    {"name": "timestamp", "type": "timestamp", "nullable": False},
    {"name": "day", "type": "date", "nullable": True},
]


def _times(events) -> list[datetime]:
    return [datetime.fromisoformat(e.event["timestamp"].replace("Z", "+00:00"))
            for e in events if e.event]


def test_library_default_is_the_fixed_backfill_day():
    """Tests and benchmarks keep reproducible dates: event i at 2026-01-15 12:00 + i s (anomalies
    at 03:00 of that day)."""
    times = _times(generate_events(SCHEMA, 300, seed=4, anomaly_share=0.5, malformed_share=0))
    assert {t.date() for t in times} == {BACKFILL_START.date()}
    assert generate_events(SCHEMA, 40, seed=4) == generate_events(SCHEMA, 40, seed=4)


def test_wall_clock_dates_each_event_within_the_spread_before_now():
    now = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    clock = EventClock(start=None, spread=timedelta(seconds=90), now=lambda: now)
    times = _times(generate_events(SCHEMA, 500, seed=1, anomaly_share=0.5, malformed_share=0,
                                   clock=clock))
    assert len(times) == 500
    assert all(now - timedelta(seconds=90) <= t <= now for t in times)
    assert max(times) - min(times) > timedelta(seconds=60)  # spread out, not one instant


def test_backfill_start_dates_event_i_at_start_plus_i_seconds():
    start = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
    times = _times(generate_events(SCHEMA, 50, seed=2, anomaly_share=0, malformed_share=0,
                                   clock=EventClock(start=start)))
    for i, t in enumerate(times):
        assert start + timedelta(seconds=i) <= t < start + timedelta(seconds=i + 1)


def _run_cli(monkeypatch, *args: str) -> list[dict]:
    sent: list[dict] = []

    def fake_send(events, topic, bootstrap, rate):
        sent.extend(json.loads(e.value) for e in events if e.event)
        return 1.0

    pipeline = streaming.pipeline.Pipeline(id=7, name="p", topic="t", status="active",
                                           schema=SCHEMA, schema_version=1,
                                           key_field="transaction_id")
    monkeypatch.setattr(producer, "load_pipeline", lambda pid: pipeline)
    monkeypatch.setattr(producer, "send", fake_send)
    assert producer.main(["--pipeline-id", "7", "--count", "200", "--malformed-share", "0",
                          *args]) == 0
    return sent


def test_cli_default_is_live_within_five_minutes(monkeypatch):
    before = datetime.now(UTC)
    sent = _run_cli(monkeypatch)
    after = datetime.now(UTC)
    times = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in sent]
    assert len(times) == 200
    # the ISO text keeps milliseconds: allow the truncation
    assert all(before - timedelta(minutes=5, milliseconds=1) <= t <= after for t in times)


def test_cli_start_keeps_backfill(monkeypatch):
    sent = _run_cli(monkeypatch, "--start", "2024-02-29T10:00:00", "--anomaly-share", "0")
    first = datetime.fromisoformat(sent[0]["timestamp"].replace("Z", "+00:00"))
    assert datetime(2024, 2, 29, 10, tzinfo=UTC) <= first < datetime(2024, 2, 29, 10, 0, 1,
                                                                      tzinfo=UTC)
