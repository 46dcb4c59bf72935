"""Backtest request bodies: UTC by default, an ordered range, a bounded sample."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from api.models.backtests import MAX_SAMPLE, BacktestCreate
from api.models.rules import RuleCreate, RuleCreated

pytestmark = pytest.mark.unit


def test_naive_times_are_utc_and_offsets_are_kept():
    body = BacktestCreate(rule_expression="a > 1", since="2026-03-01T10:00:00",
                          until="2026-03-01T13:00:00+02:00")
    assert body.since == dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
    assert body.until.utcoffset() == dt.timedelta(hours=2)
    assert body.sample_size == 20


@pytest.mark.parametrize(
    "extra",
    [
        {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
        {"since": "2026-03-01T10:00:00Z", "until": "2026-03-01T12:00:00+02:00"},  # equal
        {"sample_size": MAX_SAMPLE + 1},
        {"sample_size": -1},
        {"rule_expression": ""},
        {"unknown": 1},
    ],
)
def test_bad_bodies_are_refused(extra):
    body = {"rule_expression": "a > 1", "since": "2026-03-01T00:00:00Z",
            "until": "2026-03-02T00:00:00Z", **extra}
    with pytest.raises(ValidationError):
        BacktestCreate(**body)


def test_rule_creation_keeps_the_seed_shape_without_lookback():
    assert RuleCreate(rule_expression="a > 1").lookback_days is None
    assert RuleCreated(id=3).model_dump(exclude_none=True) == {
        "id": 3, "status": "Rule added successfully", "version": 1}
    with pytest.raises(ValidationError):
        RuleCreate(rule_expression="a > 1", lookback_days=0)
