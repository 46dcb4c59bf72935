"""Velocity rules' state, in plain Python: what the stateful query keeps per entity and per
Kafka partition, and how an arriving event updates it (see docs/velocity-engine.md).

- ``Lateness``: the latest event time seen per Kafka partition; an event more than the allowed
  lateness behind its partition's latest earlier time is too late (quarantined, never
  counted). The time every partition has reached, less the lateness, is the *horizon*: no
  event still to come can be older, so state older than horizon − window is of no use.
- ``KeyLog``: one entity's recent events (one key field, one key value): time(s), Kafka
  partition and offset, event id and only the field values the rules need. An arriving event
  is evaluated with the events that arrived before it (its window: same key, time within
  ``W`` before it, earlier in the total order (time, partition, offset)); every earlier
  arrival whose window it joins is evaluated again (a *re-evaluation*, flagged late). A
  repeated event id is ignored.

Times are integers in microseconds since the epoch; ``None`` is SQL's NULL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.rules.velocity import WindowTerm

MICROS = 1_000_000
Value = Any  # a field's value: number, string, bool or timestamp (micros), None for NULL


@dataclass(frozen=True)
class Term:
    """A window term as the key log computes it (window in microseconds)."""

    column: str
    function: str
    argument: str | None
    distinct: bool
    order_by: str
    window: int

    @classmethod
    def of(cls, term: WindowTerm) -> Term:
        return cls(term.column, term.function, term.argument, term.distinct, term.order_by,
                   term.window_seconds * MICROS)


# ---------------------------------------------------------------------------------------------
# Lateness per Kafka partition


@dataclass
class Lateness:
    """Latest event time per Kafka partition (``maxima``) and the allowed lateness."""

    lateness: int  # microseconds
    maxima: dict[int, int] = field(default_factory=dict)

    def decide(self, partition: int, t: int | None) -> bool:
        """True when the event (the next one of its partition by offset) is too late; the
        partition's latest time is updated either way."""
        prior = self.maxima.get(partition)
        late = t is not None and prior is not None and t < prior - self.lateness
        if t is not None and (prior is None or t > prior):
            self.maxima[partition] = t
        return late

    @property
    def horizon(self) -> int | None:
        """The earliest time an accepted event can still have: min over the partitions seen of
        their latest time, less the lateness (None before any event)."""
        if not self.maxima:
            return None
        return min(self.maxima.values()) - self.lateness

    def dumps(self) -> str:
        return json.dumps(sorted(self.maxima.items()))

    @classmethod
    def loads(cls, text: str | None, lateness: int) -> Lateness:
        return cls(lateness, {int(p): int(t) for p, t in json.loads(text)} if text else {})


# ---------------------------------------------------------------------------------------------
# One entity's recent events


@dataclass(frozen=True)
class Entry:
    """One accepted event as an entity's log keeps it."""

    partition: int
    offset: int
    event_id: str
    values: dict[str, Value]  # only the fields the rules need (times in micros)

    def order(self, time_field: str) -> tuple[int, int, int] | None:
        t = self.values.get(time_field)
        return None if t is None else (t, self.partition, self.offset)


@dataclass(frozen=True)
class Evaluation:
    """The terms' values for one event after an arrival (``reevaluated``: the event arrived
    earlier and a later arrival joined one of its windows). ``sequence`` numbers the arrivals
    of one batch of a key, so evaluations after different arrivals stay apart."""

    entry: Entry
    values: dict[str, float | int | None]
    reevaluated: bool
    sequence: int


def _aggregate(term: Term, members: Iterable[Entry]) -> float | int | None:
    if term.argument is None:  # count(*)
        return sum(1 for _ in members)
    values = [v for m in members if (v := m.values.get(term.argument)) is not None]
    if term.function == "count":
        return len(set(values)) if term.distinct else len(values)
    if not values:
        return None
    if term.function == "sum":
        return sum(values)
    if term.function == "avg":
        return sum(values) / len(values)
    if term.function == "min":
        return min(values)
    if term.function == "max":
        return max(values)
    raise ValueError(f"unknown window function {term.function!r}")


class KeyLog:
    """The recent accepted events of one entity (key field, key value), in arrival order.

    ``keyless``: the event's key is NULL, so it takes part in no window and every term is NULL
    for it (its log only remembers its id, to ignore a repeat).
    """

    def __init__(self, entries: Sequence[Entry] = (), *, keyless: bool = False) -> None:
        self.entries: list[Entry] = list(entries)
        self.ids = {e.event_id for e in self.entries}
        self.keyless = keyless

    def window(self, term: Term, target: Entry) -> list[Entry] | None:
        """The events of ``target``'s window for ``term`` among those arrived so far (None:
        no window, the target's time or key is NULL)."""
        own = target.order(term.order_by)
        if self.keyless or own is None:
            return None
        low = own[0] - term.window
        members = [target]
        for other in self.entries:
            if other is target:
                continue
            o = other.order(term.order_by)
            if o is not None and low <= o[0] and o < own:
                members.append(other)
        return members

    def values(self, terms: Sequence[Term], target: Entry) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {}
        for term in terms:
            members = self.window(term, target)
            out[term.column] = None if members is None else _aggregate(term, members)
        return out

    def _joins(self, terms: Sequence[Term], new: Entry, old: Entry) -> bool:
        """Whether ``new`` falls in ``old``'s window for some term."""
        for term in terms:
            n, o = new.order(term.order_by), old.order(term.order_by)
            if n is not None and o is not None and o[0] - term.window <= n[0] and n < o:
                return True
        return False

    def arrive(self, terms: Sequence[Term], arrivals: Iterable[Entry],
               first_sequence: int = 0) -> list[Evaluation]:
        """Add ``arrivals`` (in the order they arrived) and return every evaluation they cause:
        each new event's own, then the re-evaluations of earlier arrivals it joined.
        A repeated event id is ignored (the first copy counts)."""
        out: list[Evaluation] = []
        seq = first_sequence
        for entry in arrivals:
            if entry.event_id in self.ids:
                continue
            before = list(self.entries)
            self.entries.append(entry)
            self.ids.add(entry.event_id)
            out.append(Evaluation(entry, self.values(terms, entry), False, seq))
            if not self.keyless:
                for old in before:
                    if self._joins(terms, entry, old):
                        out.append(Evaluation(old, self.values(terms, old), True, seq))
            seq += 1
        return out

    def prune(self, terms: Sequence[Term], horizon: int | None) -> None:
        """Forget the events no future accepted event can have in its window: those whose
        every term time is below ``horizon`` minus that term's window. An event without any
        time is kept (its id still stops a repeat; the entity's eviction drops it)."""
        if horizon is None or not terms:
            return
        kept = []
        for entry in self.entries:
            times = [(entry.values.get(t.order_by), t.window) for t in terms]
            if all(t is None for t, _ in times) or any(
                    t is not None and t >= horizon - w for t, w in times):
                kept.append(entry)
        self.entries = kept
        self.ids = {e.event_id for e in kept}

    # The log is stored as one JSON text: the field names once, then one list per event.
    def dumps(self) -> str:
        names = sorted({k for e in self.entries for k in e.values})
        rows = [[e.partition, e.offset, e.event_id, *[e.values.get(n) for n in names]]
                for e in self.entries]
        return json.dumps({"f": names, "e": rows}, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None, *, keyless: bool = False) -> KeyLog:
        if not text:
            return cls(keyless=keyless)
        data = json.loads(text)
        names = data["f"]
        entries = [Entry(int(r[0]), int(r[1]), str(r[2]), dict(zip(names, r[3:], strict=True)))
                   for r in data["e"]]
        return cls(entries, keyless=keyless)
