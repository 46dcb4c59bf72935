"""Known rows for the lakehouse tests, written through the streaming engine's own functions.

Two pipelines (payments keyed by ``transaction_id``; IoT sensors keyed by default on
``sensor_id``, so one entity has many events) get Kafka-shaped records, good and bad. The Delta
tables are written exactly as ``streaming.archive.process_batch`` writes them (``parse_kafka`` →
``valid_events`` / ``quarantine_rows``, ``rules.evaluate`` → ``alerts.to_alerts``), while every
expectation is computed here in plain Python from the generated events and rule predicates.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

PAYMENTS_SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "user_id", "type": "long", "nullable": True},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "currency", "type": "string", "nullable": True},
    {"name": "event_time", "type": "timestamp", "nullable": False},
]
SENSORS_SCHEMA = [
    {"name": "sensor_id", "type": "string", "nullable": False},
    {"name": "temperature", "type": "double", "nullable": False},
    {"name": "ts", "type": "timestamp", "nullable": False},
]
BASE = datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
RANK = {"info": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True)
class RuleDef:
    id: int
    expression: str
    severity: str
    score: float | None
    predicate: Callable[[dict[str, Any]], bool]


@dataclass
class LakePipeline:
    """One pipeline's generated records and what the lake must hold for them."""

    id: int
    name: str
    topic: str
    schema: list[dict[str, Any]]
    key_field: str | None
    key: str  # the field whose value is the event id
    time_field: str
    rules: list[RuleDef]
    good: list[dict[str, Any]] = field(default_factory=list)
    bad: list[tuple[bytes, str]] = field(default_factory=list)  # (raw value, reason category)

    def event_time(self, e: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(e[self.time_field].replace("Z", "+00:00"))

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts the engine raises: one per (rule, event id), deduplicated by alert id.

        When events share an id (sensors keyed by ``sensor_id``) the alert keeps the earliest
        event (then the lowest offset), as ``write_pipeline`` does.
        """
        out: dict[str, dict[str, Any]] = {}
        for e in sorted(self.good, key=lambda e: (self.event_time(e), self.good.index(e))):
            for r in self.rules:
                if r.predicate(e):
                    raw = f"{self.id}|{r.id}|1|{e[self.key]}"
                    aid = hashlib.sha256(raw.encode()).hexdigest()
                    out.setdefault(aid, {"rule": r, "event_id": str(e[self.key]),
                                         "event_time": self.event_time(e)})
        return list(out.values())


def payments(pid: int, name: str, rule_base: int, n: int = 240) -> LakePipeline:
    rng = random.Random(pid * 7919)
    rules = [
        RuleDef(rule_base + 1, "amount > 900", "critical", 90.0, lambda e: e["amount"] > 900),
        RuleDef(rule_base + 2, "currency = 'XX'", "warning", 40.0,
                lambda e: e.get("currency") == "XX"),
        RuleDef(rule_base + 3, "user_id IS NULL OR amount > 700", "info", None,
                lambda e: e.get("user_id") is None or e["amount"] > 700),
    ]
    p = LakePipeline(pid, name, name, PAYMENTS_SCHEMA, "transaction_id", "transaction_id",
                     "event_time", rules)
    for i in range(n):
        t = BASE + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        p.good.append({
            "transaction_id": f"t{pid}-{i:05d}",
            "user_id": None if rng.random() < 0.1 else rng.randrange(1, 60),
            "amount": round(rng.uniform(1, 1000), 2),
            "currency": rng.choice(["USD", "EUR", "XX"]),
            "event_time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    p.bad = [(b"{not json", "invalid_json")] * 3 + [
        (b'["an", "array"]', "not_an_object"),
        (json.dumps({"transaction_id": "x1", "event_time": "2026-03-09T01:00:00Z"}).encode(),
         "missing_required"),
        (json.dumps({"transaction_id": "x2", "amount": "lots",
                     "event_time": "2026-03-09T01:00:00Z"}).encode(), "wrong_type"),
        (json.dumps({"transaction_id": "x3", "amount": 5,
                     "event_time": "2026-03-09T01:00:00Z"}).encode() + b"\xff", "invalid_utf8"),
    ]
    return p


def sensors(pid: int, name: str, rule_base: int, n: int = 120) -> LakePipeline:
    rng = random.Random(pid * 104729)
    rules = [
        RuleDef(rule_base + 1, "temperature > 80", "critical", 75.0,
                lambda e: e["temperature"] > 80),
        RuleDef(rule_base + 2, "temperature < 0", "warning", 20.0,
                lambda e: e["temperature"] < 0),
    ]
    p = LakePipeline(pid, name, name, SENSORS_SCHEMA, None, "sensor_id", "ts", rules)
    for _ in range(n):
        t = BASE + timedelta(minutes=rng.randrange(0, 2 * 24 * 60))
        p.good.append({"sensor_id": f"s-{rng.randrange(1, 15)}",
                       "temperature": round(rng.uniform(-10, 95), 1),
                       "ts": t.strftime("%Y-%m-%dT%H:%M:%SZ")})
    p.bad = [(b"", "invalid_json"), (b'{"sensor_id": "s-1"}', "missing_required")]
    return p


def write_pipeline(spark: Any, p: LakePipeline, root: str) -> date:
    """Writes bronze events + quarantine and silver alerts like the stream; the ingest date."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from streaming.alerts import to_alerts
    from streaming.parse import KAFKA_SCHEMA, parse_kafka, quarantine_rows, valid_events
    from streaming.pipeline import Paths
    from streaming.rules import Rule, evaluate
    from streaming.schema import fields_of

    records = [json.dumps(e).encode() for e in p.good] + [raw for raw, _ in p.bad]
    rows = [(None, raw, p.topic, i % 3, i, BASE + timedelta(days=5), 0)
            for i, raw in enumerate(records)]
    kafka = spark.createDataFrame(rows, KAFKA_SCHEMA)
    fields = fields_of(p.schema)
    ingested = datetime.now(UTC).date()
    parsed = parse_kafka(kafka, fields, key_field=p.key, schema_version=1).cache()
    paths = Paths(root, f"pipeline_{p.id}")
    valid_events(parsed, fields).write.format("delta").mode("append") \
        .partitionBy("event_date").save(paths.events)
    quarantine_rows(parsed, fields).write.format("delta").mode("append") \
        .partitionBy("quarantine_date").save(paths.quarantine)
    active = [Rule(r.id, r.expression, r.severity, r.score, f"rule {r.id}", 1) for r in p.rules]
    events = spark.read.format("delta").load(paths.events)
    alerts = to_alerts(evaluate(events, active), fields, p.id,
                       F.lit(datetime(2026, 3, 15, 12, 0)))
    first = Window.partitionBy("alert_id").orderBy("event_time", "kafka_offset")
    alerts = alerts.withColumn("_n", F.row_number().over(first)).where("_n = 1").drop("_n")
    alerts.write.format("delta").mode("append").save(paths.alerts)
    parsed.unpersist()
    return ingested
