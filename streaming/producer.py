"""Load generator: events that fit any pipeline schema, some anomalous, some malformed.

``python -m streaming.producer --pipeline-id N --rate R --count C [--anomaly-share 0.1]
[--malformed-share 0.02] [--seed S] [--spread-seconds 300 | --start 2026-01-15T12:00:00Z]``
sends to the pipeline's topic with kafka-python. Event times (every ``timestamp`` field) follow
the wall clock: each event is dated when it is sent, minus a random delay of up to
``--spread-seconds`` (late arrivals), so a demo reads as live in "last hour" dashboards;
``--start`` instead dates event ``i`` at ``start + i`` seconds (backfill-style history).

``generate_events`` is the same generator as a library (deterministic per seed, event times
from the fixed ``BACKFILL_START`` unless given a clock) for tests and benchmarks: anomalies
carry values at the extremes of each type, malformed records are not JSON, not an object, miss
a required field or hold a value of the wrong type. ``iter_events`` yields them lazily, so a
wall-clock time is read just before its event is sent.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from catalog.rules.field_types import FieldSpec, FieldType, default_key_field
from catalog.settings import get_settings
from streaming.pipeline import load_pipeline

MALFORMED_KINDS = ("invalid_json", "not_an_object", "missing_required", "wrong_type")
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF")
_COUNTRIES = ("US", "DE", "FR", "GB", "JP", "BR")
BACKFILL_START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
DEFAULT_SPREAD = timedelta(minutes=5)


@dataclass(frozen=True)
class EventClock:
    """Where event times come from: a fixed start (event ``i`` at ``start + i`` s, plus up to a
    second of jitter) or, with ``start=None``, the wall clock minus up to ``spread``."""

    start: datetime | None = BACKFILL_START
    spread: timedelta = DEFAULT_SPREAD
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), compare=False)

    def normal(self, i: int, rng: random.Random) -> datetime:
        if self.start is not None:
            return self.start + timedelta(seconds=i, milliseconds=rng.randint(0, 999))
        return self.now() - timedelta(seconds=rng.uniform(0, self.spread.total_seconds()))

    def odd(self, i: int, rng: random.Random) -> datetime:
        """An anomalous time: a night-time event in backfill mode, the latest arrival the
        spread allows on the wall clock (so every event stays within the spread)."""
        if self.start is not None:
            return self.start.replace(hour=3) + timedelta(seconds=i)
        return self.now() - self.spread

    def day(self) -> datetime:
        return self.start if self.start is not None else self.now()



@dataclass(frozen=True)
class GeneratedEvent:
    """One Kafka record to send, with what the generator meant it to be."""

    value: bytes
    key: bytes | None
    event: dict[str, Any] | None  # the decoded event when well-formed, else None
    malformed: str | None  # one of MALFORMED_KINDS, or None
    anomalous: bool


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _normal(name: str, ftype: FieldType, rng: random.Random, i: int, clock: EventClock) -> Any:
    low = name.lower()
    match ftype:
        case FieldType.STRING:
            if "currency" in low:
                return rng.choice(_CURRENCIES)
            if "country" in low:
                return rng.choice(_COUNTRIES)
            if "email" in low:
                return f"user{rng.randint(1, 5000)}@example.com"
            return f"{rng.choice(_WORDS)}-{rng.randint(1, 99)}"
        case FieldType.INTEGER | FieldType.LONG:
            return rng.randint(1, 10_000)
        case FieldType.FLOAT | FieldType.DOUBLE:
            return round(rng.lognormvariate(4, 1), 2)
        case FieldType.BOOLEAN:
            return rng.random() < 0.5
        case FieldType.TIMESTAMP:
            return _iso(clock.normal(i, rng))
        case FieldType.DATE:
            return (clock.day().date() + timedelta(days=rng.randint(0, 30))).isoformat()
    raise ValueError(f"unknown field type {ftype}")


def _extreme(name: str, ftype: FieldType, rng: random.Random, i: int, clock: EventClock) -> Any:
    match ftype:
        case FieldType.STRING:
            return rng.choice(("XX", "", "ZZ-unknown"))
        case FieldType.INTEGER:
            return rng.choice((2**31 - 1, -(2**31), 0))
        case FieldType.LONG:
            return rng.choice((2**63 - 1, -(2**63), 0))
        case FieldType.FLOAT | FieldType.DOUBLE:
            return rng.choice((round(rng.uniform(50_000, 1_000_000), 2), -1.0, 0.0))
        case FieldType.BOOLEAN:
            return True
        case FieldType.TIMESTAMP:
            return _iso(clock.odd(i, rng))
        case FieldType.DATE:
            return "1970-01-01"
    raise ValueError(f"unknown field type {ftype}")


def _malform(event: dict[str, Any], schema: Sequence[Mapping], rng: random.Random) -> tuple:
    kind = rng.choice(MALFORMED_KINDS)
    required = [f["name"] for f in schema if not f.get("nullable", True)]
    typed = [f["name"] for f in schema if FieldType(f["type"]) is not FieldType.STRING]
    if kind == "missing_required" and required:
        dropped = rng.choice(required)
        bad = {k: v for k, v in event.items() if k != dropped}
        return json.dumps(bad).encode(), kind
    if kind == "wrong_type" and typed:
        return json.dumps({**event, rng.choice(typed): "not-a-value"}).encode(), kind
    if kind == "not_an_object":
        return json.dumps([event]).encode(), kind
    return (b'{"broken": ' + json.dumps(event).encode()[:20]), "invalid_json"


def generate_events(
    schema: Sequence[Mapping],
    n: int,
    seed: int = 0,
    *,
    key_field: str | None = None,
    anomaly_share: float = 0.1,
    malformed_share: float = 0.02,
    null_share: float = 0.05,
    id_prefix: str = "evt",
    clock: EventClock | None = None,
) -> list[GeneratedEvent]:
    """``n`` records for ``schema`` (catalog JSON), deterministic for a given ``seed`` (and a
    fixed ``clock``; by default event times start at ``BACKFILL_START``).

    The key field (``key_field`` or the schema's default) gets unique ids
    ``<id_prefix>-<seed>-<i>``; an anomalous event has one or more fields at type extremes;
    nullable fields are null or absent with probability ``null_share``.
    """
    return list(iter_events(schema, n, seed, key_field=key_field, anomaly_share=anomaly_share,
                            malformed_share=malformed_share, null_share=null_share,
                            id_prefix=id_prefix, clock=clock))


def iter_events(
    schema: Sequence[Mapping],
    n: int,
    seed: int = 0,
    *,
    key_field: str | None = None,
    anomaly_share: float = 0.1,
    malformed_share: float = 0.02,
    null_share: float = 0.05,
    id_prefix: str = "evt",
    clock: EventClock | None = None,
) -> Iterator[GeneratedEvent]:
    """``generate_events`` one event at a time (each dated when it is generated)."""
    clock = clock or EventClock()
    rng = random.Random(seed)
    key = key_field or default_key_field(_specs(schema))
    for i in range(n):
        anomalous = rng.random() < anomaly_share
        event: dict[str, Any] = {}
        for f in schema:
            name, ftype = f["name"], FieldType(f["type"])
            if name == key:
                event[name] = f"{id_prefix}-{seed}-{i}" if ftype is FieldType.STRING else i + 1
                continue
            if f.get("nullable", True) and rng.random() < null_share:
                if rng.random() < 0.5:
                    event[name] = None
                continue
            pick = _extreme if anomalous and rng.random() < 0.5 else _normal
            event[name] = pick(name, ftype, rng, i, clock)
        key_bytes = str(event[key]).encode() if key else None
        if rng.random() < malformed_share:
            value, kind = _malform(event, schema, rng)
            yield GeneratedEvent(value, key_bytes, None, kind, anomalous)
        else:
            yield GeneratedEvent(json.dumps(event).encode(), key_bytes, event, None, anomalous)


def _specs(schema: Sequence[Mapping]) -> list:
    return [FieldSpec.model_validate(dict(f)) for f in schema]


def send(events: Iterable[GeneratedEvent], topic: str, bootstrap: str, rate: float = 0) -> float:
    """Send records (at ``rate``/s when > 0), flush, and return the achieved rate."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                             retries=5, max_in_flight_requests_per_connection=1)
    started = last_report = time.monotonic()
    sent = 0
    for ev in events:
        producer.send(topic, value=ev.value, key=ev.key)
        sent += 1
        now = time.monotonic()
        if rate > 0 and sent / rate > now - started:
            time.sleep(min(sent / rate - (now - started), 1.0))
        if now - last_report >= 1:
            last_report = now
            sys.stderr.write(f"sent {sent} ({sent / (now - started):.0f}/s)\n")
    producer.flush()
    producer.close()
    elapsed = max(time.monotonic() - started, 1e-9)
    return sent / elapsed


def _utc(text: str) -> datetime:
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Send generated events to a pipeline's topic.")
    ap.add_argument("--pipeline-id", type=int, required=True)
    ap.add_argument("--rate", type=float, default=1000, help="events per second (0 = max)")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--anomaly-share", type=float, default=0.1)
    ap.add_argument("--malformed-share", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--spread-seconds", type=float, default=DEFAULT_SPREAD.total_seconds(),
                    help="event times: the wall clock minus up to this many seconds")
    ap.add_argument("--start", type=_utc, default=None,
                    help="backfill instead: event i dated START + i s (ISO-8601, UTC if naive)")
    args = ap.parse_args(argv)
    clock = EventClock(start=args.start, spread=timedelta(seconds=args.spread_seconds))

    pipeline = load_pipeline(args.pipeline_id)
    events = iter_events(
        pipeline.schema, args.count, args.seed, key_field=pipeline.key_field,
        anomaly_share=args.anomaly_share, malformed_share=args.malformed_share, clock=clock,
    )
    achieved = send(events, pipeline.topic, get_settings().kafka_bootstrap_servers, args.rate)
    sys.stderr.write(f"done: {args.count} events to {pipeline.topic} at {achieved:.0f}/s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
