"""The semantics of velocity rules, computed by brute force in plain Python (a test oracle).

Nothing here is shared with the engine: no Spark, no SQL, no state. The stream, a replay and a
backtest must all agree with it (as sets of (rule id, event id)).

- An event is a Kafka record: event id, partition p, offset o and its fields; its time t for a
  term is the term's ``order_by`` field, its key the ``partition_by`` field.
- Too late: e.t < max{x.t : x before e in e's partition} − L (judged per record, before
  deduplication; a record whose time is null is never late). Too-late records are quarantined
  (reason ``late``) and take no part in velocity rules.
- Duplicates: of the records that are not too late, the first to arrive with an event id is
  the event; later copies are ignored.
- Window of e for term T: the accepted events x with e's key (not null) such that
  e.t − W ≤ x.t ≤ e.t and (x.t, x.p, x.o) <= (e.t, e.p, e.o) (e itself included). An
  equal-time peer counts for the later of the two in that order. Aggregates are SQL's (nulls
  ignored, count(*) counts rows, sum/avg/min/max of nothing is null); null key or time: null.
- Decided on arrival, never withdrawn: the alerts are the union, over every prefix of the
  arrival order, of the events whose condition holds on what had arrived so far.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from catalog.rules.velocity import VelocityRule, WindowTerm

Predicate = Callable[[Mapping[str, Any], Mapping[str, Any]], bool | None]
"""(event fields, term values by column) -> does the rule's condition hold."""


@dataclass(frozen=True)
class OracleEvent:
    """One Kafka record: its event id, coordinates and its fields (times as ``datetime``)."""

    event_id: str
    partition: int
    offset: int
    fields: dict[str, Any]

    def position(self, time_field: str) -> tuple[datetime, int, int]:
        """The event's place in the total order (time, partition, offset)."""
        return (self.fields[time_field], self.partition, self.offset)


def accepted(events: Sequence[OracleEvent], *, lateness_seconds: float, time_field: str
             ) -> tuple[list[OracleEvent], list[OracleEvent]]:
    """``(accepted events, too-late records)`` in arrival order; duplicates dropped."""
    lateness = timedelta(seconds=lateness_seconds)
    latest: dict[int, datetime] = {}
    last_offset: dict[int, int] = {}
    seen: set[str] = set()
    kept: list[OracleEvent] = []
    late: list[OracleEvent] = []
    for event in events:
        assert event.offset > last_offset.get(event.partition, -1), "offsets must grow"
        last_offset[event.partition] = event.offset
        t = event.fields.get(time_field)
        before = latest.get(event.partition)
        if t is not None:
            latest[event.partition] = t if before is None else max(before, t)
        if t is not None and before is not None and t < before - lateness:
            late.append(event)
        elif event.event_id not in seen:
            seen.add(event.event_id)
            kept.append(event)
    return kept, late


def window(event: OracleEvent, present: Iterable[OracleEvent], term: WindowTerm
           ) -> list[OracleEvent] | None:
    """The events of ``present`` in ``event``'s window for ``term``; None for a null key/time."""
    key, t = event.fields.get(term.partition_by), event.fields.get(term.order_by)
    if key is None or t is None:
        return None
    start = t - timedelta(seconds=term.window_seconds)
    me = (t, event.partition, event.offset)
    return [
        x for x in present
        if x.fields.get(term.partition_by) == key
        and x.fields.get(term.order_by) is not None
        and start <= x.fields[term.order_by] <= t
        and (x.fields[term.order_by], x.partition, x.offset) <= me
    ]


def aggregate(rows: list[OracleEvent] | None, term: WindowTerm) -> Any:
    """SQL's aggregate of ``term`` over ``rows`` (None: the term is null for the event)."""
    if rows is None:
        return None
    if term.argument is None:
        return len(rows)
    values = [x.fields.get(term.argument) for x in rows]
    values = [v for v in values if v is not None]
    if term.function == "count":
        return len(set(values)) if term.distinct else len(values)
    if not values:
        return None
    if term.function == "sum":
        return sum(values)
    if term.function == "avg":
        return sum(values) / len(values)
    return min(values) if term.function == "min" else max(values)


def term_values(event: OracleEvent, present: Sequence[OracleEvent], rule: VelocityRule
                ) -> dict[str, Any]:
    """``{column: value}`` of every term of ``rule`` for ``event`` among ``present``."""
    return {term.column: aggregate(window(event, present, term), term) for term in rule.terms}


def _time_field(rules: Mapping[int, tuple[VelocityRule, Predicate]]) -> str:
    fields = {term.order_by for rule, _ in rules.values() for term in rule.terms}
    assert len(fields) == 1, f"give time_field: the rules order by {sorted(fields)}"
    return fields.pop()


def alert_log(events_in_arrival_order: Sequence[OracleEvent],
              rules: Mapping[int, tuple[VelocityRule, Predicate]], *, lateness_seconds: float,
              time_field: str | None = None) -> dict[tuple[int, str], bool]:
    """Every alert ``(rule id, event id)`` → whether it is late (first raised when another
    event's arrival changed its window, not on its own arrival).

    Brute force over arrival prefixes: after each arrival, every event already present whose
    window could have changed (the new event, and the present events sharing one of its keys)
    is evaluated again on everything present.
    """
    time_field = time_field or _time_field(rules)
    kept, _ = accepted(events_in_arrival_order, lateness_seconds=lateness_seconds,
                       time_field=time_field)
    found: dict[tuple[int, str], bool] = {}
    present: dict[tuple[str, Any], list[OracleEvent]] = defaultdict(list)  # by (field, key)
    names = {term.partition_by for rule, _ in rules.values() for term in rule.terms}
    for arrived in kept:
        for name in names:
            present[(name, arrived.fields.get(name))].append(arrived)
        for rule_id, (rule, predicate) in rules.items():
            touched = {id(arrived): arrived}
            for term in rule.terms:
                key = arrived.fields.get(term.partition_by)
                if key is not None:
                    touched.update((id(e), e) for e in present[(term.partition_by, key)])
            for event in touched.values():
                if (rule_id, event.event_id) in found:
                    continue
                values = {term.column: aggregate(window(
                    event, present[(term.partition_by, event.fields.get(term.partition_by))],
                    term), term) for term in rule.terms}
                if predicate(event.fields, values):
                    found[(rule_id, event.event_id)] = event is not arrived
    return found


def expected_alerts(events_in_arrival_order: Sequence[OracleEvent],
                    rules: Mapping[int, tuple[VelocityRule, Predicate]], *,
                    lateness_seconds: float, time_field: str | None = None
                    ) -> set[tuple[int, str]]:
    """``{(rule id, event id)}``: the union over arrival prefixes (what the stream alerts)."""
    return set(alert_log(events_in_arrival_order, rules, lateness_seconds=lateness_seconds,
                         time_field=time_field))


def full_knowledge_alerts(events_in_arrival_order: Sequence[OracleEvent],
                          rules: Mapping[int, tuple[VelocityRule, Predicate]], *,
                          lateness_seconds: float, time_field: str | None = None
                          ) -> set[tuple[int, str]]:
    """``{(rule id, event id)}`` with each event evaluated once, on all accepted events.

    Equal to `expected_alerts` for conditions that only grow with the window's content
    (count, count DISTINCT, max, sum of non-negative values, compared with > / >=); a subset
    of it otherwise.
    """
    time_field = time_field or _time_field(rules)
    kept, _ = accepted(events_in_arrival_order, lateness_seconds=lateness_seconds,
                       time_field=time_field)
    return {
        (rule_id, event.event_id)
        for rule_id, (rule, predicate) in rules.items()
        for event in kept
        if predicate(event.fields, term_values(event, kept, rule))
    }
