"""The two stateful steps of the velocity query (Structured Streaming ``transformWithState``).

1. ``LatenessProcessor`` (one group for the whole topic): each event in (partition, offset)
   order gets ``late`` (too late for its partition, see ``velocity_state.Lateness``) and the
   batch's ``horizon``. Its state is one small value: the latest time per partition.
2. ``KeyProcessor`` (grouped by key field and key value): the entity's ``KeyLog``. A batch's
   arrivals are added in (time, partition, offset) order, each evaluation (own or
   re-evaluation) becomes an output row with the terms' values; too-late events pass through
   (``kind='late'``) without touching the state. A processing-time timer evicts an entity
   idle for ``idle_ms``.

The logic lives in ``velocity_state`` (plain Python); these classes only move rows and state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import Row
from pyspark.sql.streaming import StatefulProcessor, StatefulProcessorHandle

from streaming.velocity_rules import KAFKA_TS
from streaming.velocity_state import Entry, KeyLog, Lateness, Term

# Rows between the steps (DDL). ``vals``: the kept fields as JSON (times in micros); ``keys``:
# key field → key value as JSON.
EVENT_SCHEMA = ("p int, o long, eid string, raw string, kts timestamp, t long, vals string, "
                "keys string")
LATENESS_SCHEMA = EVENT_SCHEMA + ", late boolean, horizon long"
OUTPUT_SCHEMA = ("kind string, reeval boolean, seq int, kf string, p int, o long, eid string, "
                 "raw string, kts timestamp, doc string, vals map<string, double>")
LATENESS_COLUMNS = [c.split()[0] for c in LATENESS_SCHEMA.split(", ")]
KEYLESS = "\u0000"  # key values starting with it: the event's key is NULL (its id follows)


class LatenessProcessor(StatefulProcessor):
    """Too late or not, per event, from the latest time seen in its Kafka partition."""

    def __init__(self, lateness_us: int) -> None:
        self.lateness_us = lateness_us

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.maxima = handle.getValueState("maxima", "m string")

    def handleInputRows(self, key: Any, rows: Iterator[Any], timerValues: Any) -> Iterator[Any]:
        import pandas as pd

        frames = list(rows)
        if not frames:
            return
        batch = pd.concat(frames, ignore_index=True).sort_values(["p", "o"], kind="stable")
        stored = self.maxima.get() if self.maxima.exists() else None
        state = Lateness.loads(stored[0] if stored else None, self.lateness_us)
        late = [state.decide(int(p), None if pd.isna(t) else int(t))
                for p, t in zip(batch["p"], batch["t"], strict=True)]
        self.maxima.update((state.dumps(),))
        batch["late"] = late
        batch["horizon"] = state.horizon
        yield batch[LATENESS_COLUMNS].reset_index(drop=True)


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KeyProcessor(StatefulProcessor):
    """One entity's recent events and the evaluations each arrival causes."""

    def __init__(self, terms: dict[str, list[Term]], time_fields: list[str], idle_ms: int
                 ) -> None:
        self.terms = terms
        self.time_fields = set(time_fields)  # kept fields that are timestamps (micros)
        self.idle_ms = idle_ms

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.log = handle.getValueState("log", "log string, seen long, timer long")

    def _doc(self, entry: Entry) -> str:
        """The kept fields as a JSON event (what the condition of a re-evaluation reads)."""
        return json.dumps({k: _iso(v) if k in self.time_fields and v is not None else v
                           for k, v in entry.values.items() if k != KAFKA_TS})

    def handleInputRows(self, key: Any, rows: Iterator[Any], timerValues: Any) -> Iterator[Any]:
        key_field, key_value = key[0], key[1]
        # In time order (then partition, offset): any fixed order gives the same alerts for
        # conditions that grow with the window, and this one re-evaluates only the events that
        # really came out of order (across batches), not every interleaving of partitions.
        batch = sorted(rows, key=lambda r: (r.t is not None, r.t or 0, r.p, r.o))
        arrivals: list[Entry] = []
        raw: dict[tuple[int, int], tuple[str, Any]] = {}
        horizon = None
        for r in batch:
            if r.late:
                yield Row(kind="late", reeval=False, seq=0, kf=key_field, p=r.p, o=r.o,
                          eid=r.eid, raw=r.raw, kts=r.kts, doc=None, vals=None)
                continue
            arrivals.append(Entry(r.p, r.o, r.eid, json.loads(r.vals)))
            raw[(r.p, r.o)] = (r.raw, r.kts)
            if r.horizon is not None:
                horizon = r.horizon if horizon is None else max(horizon, r.horizon)
        if not arrivals:
            return
        terms = self.terms.get(key_field, [])
        stored = self.log.get() if self.log.exists() else None
        keylog = KeyLog.loads(stored[0] if stored else None,
                              keyless=key_value is None or key_value.startswith(KEYLESS))
        for ev in keylog.arrive(terms, arrivals):
            e = ev.entry
            own = None if ev.reevaluated else raw.get((e.partition, e.offset))
            kts = e.values.get(KAFKA_TS)
            yield Row(kind="eval", reeval=ev.reevaluated, seq=ev.sequence, kf=key_field,
                      p=e.partition, o=e.offset, eid=e.event_id,
                      raw=own[0] if own else None,
                      kts=own[1] if own else (None if kts is None else
                                              datetime.fromtimestamp(kts / 1_000_000, UTC)),
                      doc=self._doc(e) if ev.reevaluated else None,
                      vals={k: None if v is None else float(v) for k, v in ev.values.items()})
        keylog.prune(terms, horizon)
        now = timerValues.getCurrentProcessingTimeInMs()
        timer = stored[2] if stored else None
        if timer is None:
            timer = now + self.idle_ms
            self.handle.registerTimer(timer)
        self.log.update((keylog.dumps(), now, timer))

    def handleExpiredTimer(self, key: Any, timerValues: Any, expiredTimerInfo: Any
                           ) -> Iterator[Any]:
        """Evict an entity idle for ``idle_ms``; else look again when it would be."""
        stored = self.log.get() if self.log.exists() else None
        if stored is None:
            return iter([])
        now = timerValues.getCurrentProcessingTimeInMs()
        if now - stored[1] >= self.idle_ms:
            self.log.clear()
        else:
            timer = stored[1] + self.idle_ms
            self.handle.registerTimer(timer)
            self.log.update((stored[0], stored[1], timer))
        return iter([])
