"""The velocity state logic (lateness per partition, per-entity logs, pruning) against the
brute-force oracle, on generated streams cut into random micro-batches."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from catalog.rules.field_types import parse_schema
from catalog.rules.velocity import velocity_rule
from streaming.rules import Rule
from streaming.schema import fields_of
from streaming.velocity_rules import compile_rules
from streaming.velocity_state import MICROS, Entry, KeyLog, Lateness, Term
from tests.velocity_oracle import OracleEvent, accepted, expected_alerts

pytestmark = pytest.mark.unit

SCHEMA = [
    {"name": "tx", "type": "string", "nullable": False},
    {"name": "account", "type": "string", "nullable": True},
    {"name": "card", "type": "long", "nullable": True},
    {"name": "amount", "type": "double", "nullable": True},
    {"name": "ts", "type": "timestamp", "nullable": True},
]
W = "ORDER BY ts RANGE BETWEEN INTERVAL {} PRECEDING AND CURRENT ROW"
RULES = {
    1: (f"count(*) OVER (PARTITION BY account {W.format('5 MINUTES')}) >= 3",
        lambda f, v: v["_w0"] is not None and v["_w0"] >= 3),
    2: (f"sum(amount) OVER (PARTITION BY card {W.format('10 MINUTES')}) > 250 AND amount > 20",
        lambda f, v: v["_w0"] is not None and v["_w0"] > 250 and f["amount"] is not None
        and f["amount"] > 20),
    3: (f"count(DISTINCT card) OVER (PARTITION BY account {W.format('2 MINUTES')}) >= 2 OR "
        f"max(amount) OVER (PARTITION BY card {W.format('1 MINUTES')}) >= 150",
        lambda f, v: (v["_w0"] is not None and v["_w0"] >= 2)
        or (v["_w1"] is not None and v["_w1"] >= 150)),
}
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _micros(t: datetime) -> int:
    return int(t.timestamp() * MICROS)


def generate(seed: int, n: int = 160) -> list[OracleEvent]:
    rng = random.Random(seed)
    offsets = [0, 0, 0]
    t, out = T0, []
    for i in range(n):
        t += timedelta(seconds=rng.choice([0, 0, 5, 20, 45]))
        p = rng.randrange(3)
        own = t - timedelta(seconds=rng.choice([0, 0, 0, 30, 90, 400]))  # out of order
        if rng.random() < 0.1 and out:  # a resent duplicate
            dup = rng.choice(out)
            fields = dict(dup.fields)
        else:
            fields = {"tx": f"e{i}", "account": rng.choice(["a", "b", "c", None]),
                      "card": rng.choice([1, 2, None]),
                      "amount": rng.choice([10.0, 60.0, 120.0, 200.0, None]),
                      "ts": None if rng.random() < 0.05 else own}
        out.append(OracleEvent(fields["tx"], p, offsets[p], fields))
        offsets[p] += 1
    return out


def simulate(events: list[OracleEvent], lateness: float, seed: int) -> set[tuple[int, str]]:
    """What the stream computes: lateness (in (partition, offset) order), then per key field
    and value a ``KeyLog`` fed one micro-batch at a time (each in (time, partition, offset)
    order), pruned after each batch."""
    fields = fields_of(SCHEMA)
    compiled = compile_rules([Rule(i, expr, "info", None, None, 1) for i, (expr, _) in
                              RULES.items()], SCHEMA, fields)
    assert not compiled.errors and compiled.lateness_field == "ts"
    rng = random.Random(seed)
    state = Lateness(int(lateness * MICROS))
    logs: dict[tuple[str, object], KeyLog] = {}
    found: set[tuple[int, str]] = set()
    i = 0
    while i < len(events):
        batch = events[i:i + rng.randint(1, 25)]
        i += len(batch)
        groups: dict[tuple[str, object], list[Entry]] = defaultdict(list)
        for ev in sorted(batch, key=lambda e: (e.partition, e.offset)):
            ts = ev.fields["ts"]
            if state.decide(ev.partition, None if ts is None else _micros(ts)):
                continue
            values = {k: (_micros(v) if isinstance(v, datetime) else v)
                      for k, v in ev.fields.items() if k in compiled.kept}
            entry = Entry(ev.partition, ev.offset, ev.event_id, values)
            for kf in compiled.key_fields:
                key = ev.fields[kf]
                groups[(kf, key if key is not None else f"\0{ev.event_id}")].append(entry)
        by_id = {e.event_id: e for e in events}
        for (kf, key), arrivals in groups.items():
            log = logs.setdefault((kf, key), KeyLog(keyless=str(key).startswith("\0")))
            # the processor's order within a batch: time, then partition and offset
            arrivals.sort(key=lambda e: (e.values["ts"] is not None, e.values["ts"] or 0,
                                         e.partition, e.offset))
            for ev in log.arrive(compiled.terms[kf], arrivals):
                for c in compiled.rules:
                    cols = {t.column for t in c.velocity.terms}
                    if not cols & set(ev.values):
                        continue
                    original = velocity_rule(RULES[c.rule.id][0], parse_schema(SCHEMA))
                    assert original is not None
                    renamed = {o.column: ev.values.get(n.column)
                               for o, n in zip(original.terms, c.velocity.terms, strict=True)}
                    if len(cols) == len(cols & set(ev.values)) and RULES[c.rule.id][1](
                            by_id[ev.entry.event_id].fields, renamed):
                        found.add((c.rule.id, ev.entry.event_id))
            log.prune(compiled.terms[kf], state.horizon)
    return found


@pytest.mark.parametrize("seed", range(6))
def test_single_key_field_rules_equal_the_oracle(seed):
    events = generate(seed)
    rules = {}
    for rid in (1, 2):
        parsed = velocity_rule(RULES[rid][0], parse_schema(SCHEMA))
        assert parsed is not None
        rules[rid] = (parsed, RULES[rid][1])
    want = expected_alerts(events, rules, lateness_seconds=120)
    got = {a for a in simulate(events, 120, seed) if a[0] in (1, 2)}
    assert want and got == want


def test_lateness_is_per_partition_and_by_offset():
    state = Lateness(10 * MICROS)
    assert not state.decide(0, 100 * MICROS)
    assert not state.decide(1, 50 * MICROS)  # another partition: its own clock
    assert not state.decide(0, 90 * MICROS)  # exactly at the lateness: still counted
    assert state.decide(0, 89 * MICROS)
    assert not state.decide(0, None)  # no time: never late
    assert state.horizon == 40 * MICROS
    assert Lateness.loads(state.dumps(), 10 * MICROS).maxima == state.maxima
    assert Lateness(0).horizon is None


def _entry(eid: str, t: int, p: int = 0, o: int | None = None, amount: float | None = 1.0):
    return Entry(p, o if o is not None else t, eid, {"ts": t * MICROS, "amount": amount})


COUNT = Term("_v0", "count", None, False, "ts", 60 * MICROS)
SUM = Term("_v1", "sum", "amount", False, "ts", 60 * MICROS)


def test_window_edge_ties_and_reevaluation():
    log = KeyLog()
    out = log.arrive([COUNT], [_entry("a", 0), _entry("b", 60)])
    assert [(e.entry.event_id, e.values["_v0"], e.reevaluated) for e in out] == [
        ("a", 1, False), ("b", 2, False)]  # exactly W before: inside
    # A tie in time: the one later in (partition, offset) counts the other.
    out = log.arrive([COUNT], [_entry("c", 60, p=1, o=0)])
    assert [(e.entry.event_id, e.values["_v0"], e.reevaluated) for e in out] == [
        ("c", 3, False)]
    # Out of order: joins b's and c's windows, which are evaluated again.
    out = log.arrive([COUNT], [_entry("d", 30, p=2, o=0)])
    assert {(e.entry.event_id, e.values["_v0"], e.reevaluated) for e in out} == {
        ("d", 2, False), ("b", 3, True), ("c", 4, True)}
    assert log.arrive([COUNT], [_entry("d", 30, p=2, o=1)]) == []  # a repeat: ignored


def test_aggregates_ignore_nulls_and_prune_keeps_what_can_still_count():
    log = KeyLog()
    log.arrive([SUM], [_entry("a", 0, amount=None)])
    out = log.arrive([SUM], [_entry("b", 10, amount=None)])
    assert out[0].values["_v1"] is None  # sum of nothing
    out = log.arrive([SUM], [_entry("c", 20, amount=5.0)])
    assert out[0].values["_v1"] == 5.0
    log.prune([SUM], horizon=70 * MICROS)  # a future event is at 70 s or later: keeps 10, 20
    assert [e.event_id for e in log.entries] == ["b", "c"]
    back = KeyLog.loads(log.dumps())
    assert back.entries == log.entries and back.ids == {"b", "c"}


def test_keyless_events_are_deduplicated_but_in_no_window():
    log = KeyLog(keyless=True)
    out = log.arrive([COUNT], [_entry("a", 0), _entry("a", 0)])
    assert len(out) == 1 and out[0].values == {"_v0": None}


def test_compile_shares_terms_and_renames_conditions():
    fields = fields_of(SCHEMA)
    rules = [Rule(i, expr, "info", None, None, 1) for i, (expr, _) in RULES.items()]
    rules.append(Rule(9, "amount > 5", "info", None, None, 1))
    compiled = compile_rules(rules, SCHEMA, fields)
    assert [r.id for r in compiled.errors] == [9]
    assert compiled.key_fields == ["account", "card"]
    assert sorted(compiled.columns) == ["_v0", "_v1", "_v2", "_v3"]
    assert compiled.kept == ["amount", "card", "ts"]  # account is the key: kept as the group
    by_id = {c.rule.id: c.rule.expression for c in compiled.rules}
    assert by_id[1] == "_v0 >= 3"
    assert "_v2 >= 2" in by_id[3] and "_v3 >= 150" in by_id[3]
    _, late = accepted(generate(1), lateness_seconds=120, time_field="ts")
    assert late  # the generated streams exercise lateness
