"""Generated event streams for velocity-rule tests, and the rules they are checked with.

A stream is a list of `OracleEvent`s in arrival order (Kafka partition and offset set), built
to hit the cases the semantics must get right: bursts per key, ties at equal times in several
partitions, events exactly one window length apart, out-of-order arrivals within the allowed
lateness, records far too late, and resent duplicates (same id, same partition, later offset,
as a producer keyed by event id resends). Times have millisecond precision and amounts are
whole numbers, so Spark and Python compute the same sums.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from catalog.rules.field_types import FieldType
from catalog.rules.velocity import VelocityRule, velocity_rule
from tests.velocity_oracle import OracleEvent, Predicate

SCHEMA = [
    {"name": "txn_id", "type": "string", "nullable": False},
    {"name": "account", "type": "string", "nullable": True},
    {"name": "card_id", "type": "string", "nullable": True},
    {"name": "merchant", "type": "string", "nullable": True},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "ts", "type": "timestamp", "nullable": False},
]
TYPES = {f["name"]: FieldType(f["type"]) for f in SCHEMA}
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATENESS_SECONDS = 60
AMOUNTS = (5.0, 20.0, 50.0, 100.0, 250.0, 400.0, 1000.0)


def _window(key: str, minutes: int) -> str:
    return (f"OVER (PARTITION BY {key} ORDER BY ts RANGE BETWEEN INTERVAL {minutes} MINUTES "
            "PRECEDING AND CURRENT ROW)")


@dataclass(frozen=True)
class RuleCase:
    """A velocity rule, its plain-Python twin, and whether its condition only grows with the
    window's content (then the stream's and the backtest's answers are equal)."""

    id: int
    expression: str
    predicate: Predicate
    monotone: bool

    @property
    def rule(self) -> VelocityRule:
        parsed = velocity_rule(self.expression, TYPES)
        assert parsed is not None
        return parsed


def _ge(value: Any, bound: float) -> bool:
    return value is not None and value >= bound


RULES = [
    RuleCase(1, f"count(*) {_window('account', 5)} >= 4",
             lambda f, v: _ge(v["_w0"], 4), True),
    RuleCase(2, f"sum(amount) {_window('card_id', 10)} > 1000 AND amount > 20",
             lambda f, v: v["_w0"] is not None and v["_w0"] > 1000 and f["amount"] > 20, True),
    RuleCase(3, f"count(DISTINCT merchant) {_window('account', 2)} >= 3 OR "
                f"max(amount) {_window('card_id', 1)} >= 1000 AND count(card_id) "
                f"{_window('card_id', 1)} >= 2",
             lambda f, v: _ge(v["_w0"], 3) or (_ge(v["_w1"], 1000) and _ge(v["_w2"], 2)), True),
    RuleCase(4, f"min(amount) {_window('account', 5)} <= 5 AND count(*) {_window('account', 5)} "
                ">= 2",
             lambda f, v: v["_w0"] is not None and v["_w0"] <= 5 and _ge(v["_w1"], 2), True),
    RuleCase(5, f"avg(amount) {_window('account', 5)} > 300",
             lambda f, v: v["_w0"] is not None and v["_w0"] > 300, False),
]


def rule_map(cases: list[RuleCase]) -> Mapping[int, tuple[VelocityRule, Predicate]]:
    return {case.id: (case.rule, case.predicate) for case in cases}


def generate(seed: int, n: int = 160, *, partitions: int = 3, prefix: str = "v",
             base: datetime = BASE) -> list[OracleEvent]:
    """About ``n`` distinct events (plus duplicates) in arrival order, from ``base`` on."""
    rng = random.Random(seed)
    accounts = ["A", "B", "C", "D", "E", "F", "G", "H"]
    cards = ["c1", "c2", "c3", None]
    logical: list[dict[str, Any]] = []  # fields + "_ms" (event time) + "_p" (forced partition)
    now = 0

    def add(account: str | None, ms: int, partition: int | None = None) -> None:
        logical.append({
            "txn_id": f"{prefix}-{len(logical)}", "account": account,
            "card_id": rng.choice(cards), "merchant": rng.choice(["m1", "m2", "m3", None]),
            "amount": rng.choice(AMOUNTS), "_ms": ms,
            "_p": rng.randrange(partitions) if partition is None else partition})

    while len(logical) < n:
        kind = rng.random()
        account = rng.choice(accounts)
        if kind < 0.3:  # a burst on one account
            for _ in range(rng.randint(3, 6)):
                now += rng.randint(0, 4000)
                add(account, now)
        elif kind < 0.45:  # ties: equal times on one account in different partitions
            now += rng.randint(1000, 20_000)
            for p in rng.sample(range(partitions), rng.randint(2, partitions)):
                add(account, now, p)
        elif kind < 0.6 and logical:  # exactly one window (1, 2, 5 or 10 min) after another
            earlier = rng.choice(logical[-15:])
            ms = earlier["_ms"] + rng.choice([1, 2, 5, 10]) * 60_000
            add(earlier["account"], ms)
            logical[-1]["card_id"] = earlier["card_id"]
            now = max(now, ms)
        elif kind < 0.64:
            now += rng.randint(1000, 30_000)
            add(None, now)  # no account: no window of the account terms
        else:
            now += rng.randint(1000, 90_000)
            add(account, now)

    arrivals: list[tuple[float, int, dict[str, Any]]] = []
    for i, event in enumerate(logical):
        delay = 0.0
        roll = rng.random()
        if roll < 0.15:
            delay = rng.uniform(1, 45) * 1000  # out of order, within the lateness
        elif roll < 0.23:
            delay = rng.uniform(200, 600) * 1000  # far too late (once newer events arrived)
        arrivals.append((event["_ms"] + delay, i, event))
        if rng.random() < 0.06:  # resent later, same partition
            arrivals.append((event["_ms"] + delay + rng.uniform(0, 120) * 1000, i, event))
    arrivals.sort(key=lambda a: (a[0], a[1]))
    offsets = [0] * partitions
    out = []
    for _, _, event in arrivals:
        p = event["_p"]
        fields = {k: v for k, v in event.items() if not k.startswith("_")}
        fields["ts"] = base.replace(microsecond=base.microsecond // 1000 * 1000) + timedelta(
            milliseconds=event["_ms"])
        out.append(OracleEvent(event["txn_id"], p, offsets[p], fields))
        offsets[p] += 1
    return out


def kafka_value(event: OracleEvent) -> bytes:
    """The record's JSON value as a producer sends it (times as ISO-8601 text)."""
    fields = dict(event.fields)
    fields["ts"] = fields["ts"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json.dumps(fields).encode()


def kafka_rows(events: list[OracleEvent], topic: str) -> list[tuple[Any, ...]]:
    """Kafka-source rows (``streaming.parse.KAFKA_SCHEMA``) of ``events``; the record
    timestamp is the event time (naive UTC, like Spark's)."""
    return [(None, kafka_value(e), topic, e.partition, e.offset,
             e.fields["ts"].astimezone(UTC).replace(tzinfo=None), 0) for e in events]
