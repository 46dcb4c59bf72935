"""Velocity rules in the running stream equal the brute-force oracle (sets of (rule, event)).

One generated stream over three Kafka partitions, two rules on two key fields: bursts, equal
timestamps in several partitions, events exactly at the window edge, out-of-order events
within the lateness, too-late events (must land in quarantine with reason ``late``), resent
duplicates; the job is SIGKILLed mid-stream and restarted; then a rule is edited (new version)
and the stream goes on. Postgres must hold exactly the oracle's alerts, quarantine exactly the
oracle's too-late records, once each.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaProducer
from sqlalchemy import update

from catalog.db import get_engine
from catalog.rules.field_types import parse_schema
from catalog.rules.velocity import velocity_rule
from catalog.tables import pipelines, rules
from streaming.alerts import alert_id
from streaming.velocity import JVM_CHECKPOINT
from tests.velocity_oracle import OracleEvent, accepted, alert_log, expected_alerts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

LATENESS = 30
WINDOW = "RANGE BETWEEN INTERVAL {} PRECEDING AND CURRENT ROW"
R1 = ("count(*) OVER (PARTITION BY user_id ORDER BY event_time "
      + WINDOW.format("60 SECONDS") + ") >= {}")
R2 = ("sum(amount) OVER (PARTITION BY merchant ORDER BY event_time "
      + WINDOW.format("2 MINUTES") + ") > 500 AND amount > 50")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _r1(threshold: int):
    return lambda fields, v: v["_w0"] is not None and v["_w0"] >= threshold


def _r2(fields: dict[str, Any], v: dict[str, Any]) -> bool:
    return v["_w0"] is not None and v["_w0"] > 500 and fields["amount"] > 50


class Stream:
    """Generated records with their partition and offset (offsets counted per partition)."""

    def __init__(self, prefix: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.records: list[OracleEvent] = []
        self.next_offset = [0, 0, 0]
        self.clock = [T0, T0, T0]  # latest time sent per partition
        self.n = 0

    def add(self, partition: int, t: datetime, user: int | None, merchant: str,
            amount: float, event_id: str | None = None) -> OracleEvent:
        if event_id is None:
            self.n += 1
            event_id = f"{self.prefix}-{self.n}"
        fields = {"transaction_id": event_id, "user_id": user, "amount": amount,
                  "currency": "EUR", "merchant": merchant, "is_card_present": True,
                  "event_time": t}
        ev = OracleEvent(event_id, partition, self.next_offset[partition], fields)
        self.next_offset[partition] += 1
        self.clock[partition] = max(self.clock[partition], t)
        self.records.append(ev)
        return ev

    def phase(self, start: datetime, n: int) -> list[OracleEvent]:
        """``n`` records from ``start`` on, with every shape the semantics cares about."""
        rng, out, t = self.rng, [], start
        for i in range(n):
            t += timedelta(seconds=rng.choice([0, 1, 2, 5, 9]))
            p, user = rng.randrange(3), rng.choice([1, 2, 3, 4, None])
            merchant, amount = rng.choice(["m1", "m2", "m3"]), rng.choice([20.0, 80.0, 160.0])
            out.append(self.add(p, t, user, merchant, amount))
            kind = i % 9
            if kind == 1:  # a burst of one user in several partitions, two at the same time
                for q in range(3):
                    out.append(self.add(q, t, 7, merchant, 90.0))
            elif kind == 3:  # exactly at the window's edge (60 s after an earlier event)
                out.append(self.add(p, t + timedelta(seconds=60), 8, "m4", 10.0))
                out.append(self.add(p, t + timedelta(seconds=60), 8, "m4", 10.0))
                t += timedelta(seconds=60)
            elif kind == 5:  # out of order, within the lateness of its partition
                q = rng.randrange(3)
                out.append(self.add(q, self.clock[q] - timedelta(seconds=LATENESS - 5), 2,
                                    "m2", 200.0))
            elif kind == 6:  # too late for its partition
                q = rng.randrange(3)
                out.append(self.add(q, self.clock[q] - timedelta(seconds=LATENESS + 40), 1,
                                    "m1", 300.0))
            elif kind == 7 and len(self.records) > 5:  # a resent duplicate (same partition)
                dup = rng.choice(self.records[-6:])
                out.append(self.add(dup.partition, dup.fields["event_time"],
                                    dup.fields["user_id"], dup.fields["merchant"],
                                    dup.fields["amount"], event_id=dup.event_id))
        return out


def produce(topic: str, records: list[OracleEvent], bootstrap: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             max_in_flight_requests_per_connection=1)
    for r in records:
        fields = dict(r.fields, event_time=r.fields["event_time"].strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"))
        producer.send(topic, json.dumps(fields).encode(), key=r.event_id.encode(),
                      partition=r.partition)
    producer.flush()
    producer.close()


def postgres_alerts(pipeline_id: int) -> list[Any]:
    with get_engine().connect() as conn:
        return conn.exec_driver_sql(
            "select rule_id, event_id, alert_id, rule_version from fraud_alerts "
            "where pipeline_id = %s", (pipeline_id,)).all()


def velocity_committed(warehouse, pipeline_id: int, kit, engine: str) -> int:
    name = JVM_CHECKPOINT if engine == "jvm" else "velocity"
    return kit.committed_offsets(kit.local_checkpoint(
        warehouse / "_checkpoints" / f"pipeline_{pipeline_id}" / name))


@pytest.fixture(scope="module")
def velocity_jar() -> None:
    """The compiled steps, built as ``make jars`` builds them (the job's driver loads them)."""
    from streaming.velocity_jar import build

    assert build(quiet=True) is not None, "the JVM engine needs a JDK (javac) to build its jar"


@pytest.mark.parametrize("engine", ["jvm", "python"])
def test_velocity_stream_equals_oracle(make_pipeline, job_factory, spark_reader, kit,
                                       tmp_path, velocity_jar, engine):
    warehouse = tmp_path / "warehouse"
    tp = make_pipeline([kit.RuleSpec(R1.format(3), "warning", 30.0, None),
                        kit.RuleSpec(R2, "critical", 80.0, None)])
    r1, r2 = tp.rules
    schema = parse_schema(kit.SCHEMA)
    rule1 = velocity_rule(R1.format(3), schema)
    rule1b = velocity_rule(R1.format(2), schema)
    rule2 = velocity_rule(R2, schema)
    assert rule1 and rule1b and rule2

    stream = Stream(tp.topic, seed=tp.id)
    phase1 = stream.phase(T0, 45)
    produce(tp.topic, phase1, kit.BOOTSTRAP)
    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": str(warehouse),
                              "SENTINEL_VELOCITY_ALLOWED_LATENESS_SECONDS": str(LATENESS),
                              "SENTINEL_RULE_POLL_SECONDS": "1",
                              "SENTINEL_VELOCITY_ENGINE": engine})
    log = tmp_path / f"job-{tp.id}.log"

    def this_run() -> str:
        return log.read_text().split("===== start")[-1]

    def committed() -> int:
        return velocity_committed(warehouse, tp.id, kit, engine)

    # Killed mid-stream: after its first velocity batch, while the backlog is still read.
    job.start(max_offsets=15)
    kit.wait_for(lambda: "velocity batch=" in this_run(), 900, "first velocity batch", job)
    time.sleep(random.Random(tp.id).uniform(0.0, 3.0))
    job.kill()
    assert committed() < len(stream.records), "killed too late"

    phase2 = stream.phase(max(stream.clock) + timedelta(seconds=5), 30)
    produce(tp.topic, phase2, kit.BOOTSTRAP)
    job.start(max_offsets=40)
    before_edit = len(stream.records)
    kit.wait_for(lambda: committed() == before_edit, 900,
                 "velocity catch-up after the restart", job)

    # Rule 1 edited: a new version, judging what arrives from now on.
    with get_engine().begin() as conn:
        conn.execute(update(rules).where(rules.c.id == r1.id).values(
            rule_expression=R1.format(2), version=rules.c.version + 1,
            updated_at=datetime.now(UTC)))
        conn.execute(update(pipelines).where(pipelines.c.id == tp.id)
                     .values(rules_version=pipelines.c.rules_version + 1))
    kit.wait_for(lambda: "velocity query restarted" in this_run(), 600, "velocity restart", job)
    phase3 = stream.phase(max(stream.clock) + timedelta(seconds=5), 25)
    produce(tp.topic, phase3, kit.BOOTSTRAP)
    kit.wait_for(lambda: committed() == len(stream.records), 900,
                 "velocity catch-up after the edit", job)

    # The oracle: rule 2 over everything; rule 1 in version 1 over what arrived before the
    # edit, in version 2 for the events that arrived after it.
    everything = stream.records
    early = everything[:before_edit]
    late_ids = {e.event_id for e in everything[before_edit:]}
    expected = expected_alerts(everything, {r2.id: (rule2, _r2)}, lateness_seconds=LATENESS)
    expected |= expected_alerts(early, {r1.id: (rule1, _r1(3))}, lateness_seconds=LATENESS)
    v2 = expected_alerts(everything, {r1.id: (rule1b, _r1(2))}, lateness_seconds=LATENESS)
    early_ids = {e.event_id for e in early}
    expected |= {(r, e) for r, e in v2 if e in late_ids and e not in early_ids}
    _, too_late = accepted(everything, lateness_seconds=LATENESS, time_field="event_time")
    assert too_late and expected, "the generated stream must exercise both"
    raised_late = alert_log(everything, {r2.id: (rule2, _r2)}, lateness_seconds=LATENESS)
    assert any(raised_late.values()), "some alerts must come from re-evaluations"

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = postgres_alerts(tp.id)
        if {(r.rule_id, r.event_id) for r in got} == expected:
            break
        time.sleep(1)
    got = postgres_alerts(tp.id)
    assert {(r.rule_id, r.event_id) for r in got} == expected
    assert len(got) == len({r.alert_id for r in got})
    for row in got:
        assert row.alert_id == alert_id(tp.id, row.rule_id, row.rule_version, row.event_id)
        assert row.rule_version == (2 if row.rule_id == r1.id and row.event_id in late_ids
                                    else 1)

    quarantine = spark_reader.read.format("delta").load(
        f"{warehouse}/bronze/pipeline_{tp.id}/quarantine").where("reason = 'late'").collect()
    got_late = [(r["kafka_partition"], r["kafka_offset"]) for r in quarantine]
    assert sorted(got_late) == sorted((e.partition, e.offset) for e in too_late)
