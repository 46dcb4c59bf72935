"""Real-service fixtures for the streaming engine: catalog rows, Kafka topics, the job process.

Every test gets unique pipeline names/topics/warehouse paths, so the suite can run repeatedly.
Expectations are computed in plain Python from the generated events and rule predicates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from catalog.db import get_engine
from catalog.tables import pipelines, rules, stream_runs
from streaming.producer import GeneratedEvent, send

ROOT = Path(__file__).resolve().parents[3]
BOOTSTRAP = "127.0.0.1:9092"
S3_ENDPOINT = "http://127.0.0.1:9000"
TRIGGER = 1.0
ALERTS_PREFIX = "sentinel-alerts."  # the default SENTINEL_ALERTS_TOPIC_PREFIX
# A Redis database of its own: Redis keys are per pipeline id, and the ids of the test catalog
# overlap those of any other catalog (e.g. a dev stack's jobs) sharing the same Redis server.
REDIS_URL = os.environ.get("SENTINEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# Short-lived test JVMs spend much of their time compiling: C1 only roughly halves that on the
# 2-core machine (tests only; the product keeps the JVM defaults).
# C1 alone gets a 48 MiB code cache by default, which a stream job with a real-time query
# fills (the JIT then stops and everything slows down): give it room.
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "user_id", "type": "long", "nullable": True},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "currency", "type": "string", "nullable": True},
    {"name": "merchant", "type": "string", "nullable": True},
    {"name": "is_card_present", "type": "boolean", "nullable": True},
    {"name": "event_time", "type": "timestamp", "nullable": False},
]


@dataclass
class RuleSpec:
    expression: str
    severity: str
    score: float | None
    predicate: Callable[[dict[str, Any]], bool] | None  # None: the rule must fail analysis
    id: int = 0
    version: int = 1


def base_rules() -> list[RuleSpec]:
    """Rules over SCHEMA with a plain-Python twin each (SQL NULL → no match)."""
    return [
        RuleSpec("amount > 5000", "critical", 90.0, lambda e: e["amount"] > 5000),
        RuleSpec("currency IN ('XX', 'ZZ-unknown')", "warning", 40.0,
                 lambda e: e.get("currency") in ("XX", "ZZ-unknown")),
        RuleSpec("user_id IS NULL", "info", 5.0, lambda e: e.get("user_id") is None),
        RuleSpec("amount > 100 AND currency = 'USD' AND is_card_present = false", "warning",
                 None, lambda e: e["amount"] > 100 and e.get("currency") == "USD"
                 and e.get("is_card_present") is False),
        RuleSpec("merchant LIKE 'alpha%' AND user_id BETWEEN 1 AND 500", "info", 1.0,
                 lambda e: (e.get("merchant") or "").startswith("alpha")
                 and e.get("user_id") is not None and 1 <= e["user_id"] <= 500),
        RuleSpec("amount < 0 OR user_id = 0", "critical", 99.0,
                 lambda e: e["amount"] < 0 or e.get("user_id") == 0),
        RuleSpec("amount >>> 5", "warning", None, None),
        RuleSpec("no_such_column > 1", "warning", None, None),
    ]


@dataclass
class TestPipeline:
    id: int
    topic: str
    rules: list[RuleSpec] = field(default_factory=list)
    sent: list[GeneratedEvent] = field(default_factory=list)

    def add_rule(self, spec: RuleSpec) -> RuleSpec:
        with get_engine().begin() as conn:
            spec.id = conn.execute(
                insert(rules).values(pipeline_id=self.id, rule_expression=spec.expression,
                                     severity=spec.severity, score=spec.score,
                                     description=f"test rule {spec.expression}")
                .returning(rules.c.id)
            ).scalar_one()
            _bump(conn, self.id)
        self.rules.append(spec)
        return spec

    def set_rule_active(self, spec: RuleSpec, active: bool) -> None:
        with get_engine().begin() as conn:
            conn.execute(update(rules).where(rules.c.id == spec.id).values(is_active=active))
            _bump(conn, self.id)

    def set_status(self, status: str) -> None:
        with get_engine().begin() as conn:
            conn.execute(update(pipelines).where(pipelines.c.id == self.id)
                         .values(status=status))

    def produce(self, events: list[GeneratedEvent]) -> None:
        send(events, self.topic, BOOTSTRAP)
        self.sent.extend(events)

    def rule_rows(self) -> dict[int, Any]:
        with get_engine().connect() as conn:
            rows = conn.execute(select(rules).where(rules.c.pipeline_id == self.id)).all()
        return {r.id: r for r in rows}

    def runs(self) -> list[Any]:
        with get_engine().connect() as conn:
            return conn.execute(select(stream_runs).where(stream_runs.c.pipeline_id == self.id)
                                .order_by(stream_runs.c.id)).all()


def _bump(conn, pipeline_id: int) -> None:
    conn.execute(update(pipelines).where(pipelines.c.id == pipeline_id)
                 .values(rules_version=pipelines.c.rules_version + 1))


def create_topic(topic: str, partitions: int = 3) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=20_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def delete_topic(topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=20_000)
    try:
        admin.delete_topics([topic])
    except Exception:  # cleanup is best effort
        pass
    finally:
        admin.close()


@pytest.fixture()
def make_pipeline(catalog_db: None) -> Iterator[Callable[..., TestPipeline]]:
    """Create pipelines (catalog row + Kafka topic); topics are deleted afterwards."""
    made: list[TestPipeline] = []

    def make(specs: list[RuleSpec] | None = None) -> TestPipeline:
        name = f"it-stream-{uuid.uuid4().hex[:10]}"
        create_topic(name)
        with get_engine().begin() as conn:
            pid = conn.execute(
                insert(pipelines).values(name=name, kafka_topic=name, status="active",
                                         key_field="transaction_id", schema=SCHEMA)
                .returning(pipelines.c.id)
            ).scalar_one()
        tp = TestPipeline(pid, name)
        _clear_redis(pid)  # ids restart with each fresh test database
        for spec in specs or []:
            tp.add_rule(spec)
        made.append(tp)
        return tp

    yield make
    for tp in made:
        delete_topic(tp.topic)
        delete_topic(ALERTS_PREFIX + tp.topic)
        _clear_redis(tp.id)


def _clear_redis(pipeline_id: int) -> None:
    import redis


    client = redis.Redis.from_url(REDIS_URL)
    client.delete(f"fraud:counts:{pipeline_id}", f"fraud:alerts:{pipeline_id}")


class JobProcess:
    """``python -m streaming.job`` in its own process group (so SIGKILL takes the JVM too);
    several pipeline ids run as several queries in that one job."""

    def __init__(self, pipeline_id: int | list[int], env: dict[str, str],
                 log_path: Path) -> None:
        self.pipeline_ids = [pipeline_id] if isinstance(pipeline_id, int) else list(pipeline_id)
        self.pipeline_id, self.env, self.log_path = self.pipeline_ids[0], env, log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, max_offsets: int | None = None) -> None:
        args = [sys.executable, "-m", "streaming.job",
                *(a for pid in self.pipeline_ids for a in ("--pipeline-id", str(pid))),
                "--trigger-seconds", str(TRIGGER)]
        if max_offsets:
            args += ["--max-offsets", str(max_offsets)]
        self.starts += 1
        with self.log_path.open("a") as fh:
            fh.write(f"\n===== start #{self.starts} =====\n")
            fh.flush()
            self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=fh,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)


@pytest.fixture()
def job_factory(tmp_path: Path) -> Iterator[Callable[..., JobProcess]]:
    jobs: list[JobProcess] = []

    def make(pipeline_id: int | list[int], extra_env: dict[str, str]) -> JobProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAVA_TOOL_OPTIONS": TEST_JAVA_OPTIONS,
               "SENTINEL_REDIS_URL": REDIS_URL, **extra_env}
        ids = [pipeline_id] if isinstance(pipeline_id, int) else pipeline_id
        job = JobProcess(pipeline_id, env, tmp_path / f"job-{'-'.join(map(str, ids))}.log")
        jobs.append(job)
        return job

    yield make
    for job in jobs:
        job.stop()


@pytest.fixture(scope="module")
def spark_reader(spark_slot):
    """A Spark session in the test process to read the Delta tables (local and s3a)."""
    from catalog.settings import Settings
    from streaming.session import build_session

    os.environ.setdefault("JAVA_TOOL_OPTIONS", TEST_JAVA_OPTIONS)
    settings = Settings(s3_endpoint=S3_ENDPOINT, s3_access_key_id="testing",
                        s3_secret_access_key="testing", spark_master="local[1]")
    return spark_slot.acquire("reader", lambda: build_session(
        "sentinel-it-reader", settings=settings, shuffle_partitions=1))


def committed_offsets(checkpoint_files: Callable[[str], dict[str, str]]) -> int:
    """Sum of the events topic's Kafka offsets the checkpoint has committed (0 before the
    first commit; an archive checkpoint also holds the alerts topic's, left out)."""
    commits = checkpoint_files("commits")
    if not commits:
        return 0
    last = max(int(name) for name in commits if name.isdigit())
    offsets = checkpoint_files("offsets").get(str(last))
    if offsets is None:
        return 0
    data = json.loads(offsets.strip().splitlines()[-1])
    return sum(int(o) for topic, parts in data.items() if not topic.startswith(ALERTS_PREFIX)
               for o in parts.values())


def local_checkpoint(root: Path) -> Callable[[str], dict[str, str]]:
    def files(sub: str) -> dict[str, str]:
        d = root / sub
        if not d.is_dir():
            return {}
        return {p.name: p.read_text() for p in d.iterdir() if p.name.isdigit()}

    return files


def archive_checkpoint(warehouse: Path, pipeline_id: int) -> Callable[[str], dict[str, str]]:
    """The files of a pipeline's archive checkpoint under a local warehouse."""
    return local_checkpoint(warehouse / "_checkpoints" / f"pipeline_{pipeline_id}" / "archive")


def committed_of(warehouse: Path, tp: TestPipeline) -> int:
    """Kafka offsets the pipeline's checkpoint under ``warehouse`` has committed."""
    return committed_offsets(archive_checkpoint(warehouse, tp.id))


def wave(tp: TestPipeline, n: int, seed: int) -> list[GeneratedEvent]:
    """``n`` generated events for ``tp`` (a quarter anomalous, 5 % malformed), ids unique per
    seed."""
    from streaming.producer import generate_events

    return generate_events(SCHEMA, n, seed, anomaly_share=0.25, malformed_share=0.05,
                           id_prefix=f"{tp.topic}-w{seed}")


def wait_for(cond: Callable[[], bool], timeout: float, what: str, job: JobProcess) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if cond():
            return time.monotonic() - started
        if not job.alive():
            pytest.fail(f"job exited while waiting for {what}:\n{job.log_tail()}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{job.log_tail()}")


def expected_alerts(tp: TestPipeline, events: list[GeneratedEvent] | None = None,
                    specs: list[RuleSpec] | None = None) -> set[tuple[int, str]]:
    """{(rule_id, event_id)} that the rules' Python twins predict for the valid events."""
    evs = [e.event for e in (events if events is not None else tp.sent) if e.event]
    live = [r for r in (specs if specs is not None else tp.rules) if r.predicate]
    return {(r.id, e["transaction_id"]) for r in live for e in evs if r.predicate(e)}


def expected_quarantine(events: list[GeneratedEvent]) -> Counter:
    return Counter((e.value, e.malformed) for e in events if e.malformed)


def reason_kind(reason: str) -> str:
    for kind in ("invalid_json", "not_an_object", "missing_required", "wrong_type"):
        if reason.startswith(kind):
            return kind
    return reason


def _await_alerts(spark, tp: TestPipeline, warehouse: str, n: int, redis_url: str,
                  timeout: float = 120.0) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    silver = f"{warehouse}/silver/pipeline_{tp.id}/alerts"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_engine().connect() as conn:
            pg = conn.exec_driver_sql("select count(*) from fraud_alerts where pipeline_id = %s",
                                      (tp.id,)).scalar_one()
        if (pg >= n and client.xlen(f"fraud:alerts:{tp.id}") >= n
                and spark.read.format("delta").load(silver).count() >= n):
            return
        time.sleep(1.0)


def check_sinks(spark, tp: TestPipeline, warehouse: str,
                expected: set[tuple[int, str]], redis_url: str = REDIS_URL) -> None:
    """Bronze, quarantine, Delta alerts, Postgres and Redis all hold exactly what is expected.

    Alerts reach the sinks on their own paths (detect → alerts topic → fan-out and archive):
    once the events are archived, the alerts may still be on their way to silver, so the check
    first waits until every sink holds at least the expected count (or 120 s passed).
    """
    import redis

    from streaming.alerts import alert_id

    _await_alerts(spark, tp, warehouse, len(expected), redis_url)

    base = f"{warehouse}/bronze/pipeline_{tp.id}"
    valid = [e for e in tp.sent if e.event]
    bronze = [r["_event_id"] for r in
              spark.read.format("delta").load(f"{base}/events").select("_event_id").collect()]
    assert len(bronze) == len(valid)
    assert set(bronze) == {e.event["transaction_id"] for e in valid}
    quarantine = spark.read.format("delta").load(f"{base}/quarantine").collect()
    got_q = Counter((None if r["raw_value"] is None else bytes(r["raw_value"]),
                     reason_kind(r["reason"])) for r in quarantine)
    assert got_q == expected_quarantine(tp.sent)

    versions = {spec.id: spec.version for spec in tp.rules}
    delta_alerts = spark.read.format("delta").load(f"{warehouse}/silver/pipeline_{tp.id}/alerts")
    rows = delta_alerts.select("rule_id", "event_id", "alert_id").collect()
    assert len(rows) == len(expected)
    assert {(r["rule_id"], r["event_id"]) for r in rows} == expected
    with get_engine().connect() as conn:
        pg = conn.exec_driver_sql(
            "select rule_id, event_id, alert_id, rule_version from fraud_alerts "
            "where pipeline_id = %s", (tp.id,)
        ).all()
    assert len(pg) == len(expected)
    assert {(r.rule_id, r.event_id) for r in pg} == expected
    assert all(r.alert_id == alert_id(tp.id, r.rule_id, versions[r.rule_id], r.event_id)
               for r in pg)

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    by_rule = {spec.id: spec for spec in tp.rules}
    per_event: dict[str, list[RuleSpec]] = {}
    for rule_id, event_id in expected:
        per_event.setdefault(event_id, []).append(by_rule[rule_id])
    pipe = client.pipeline(transaction=False)
    for event_id in per_event:
        pipe.hgetall(f"fraud:txn:{event_id}")
    for (_event_id, specs), got in zip(per_event.items(), pipe.execute(), strict=True):
        assert got["rule_ids"] == ",".join(str(i) for i in sorted(s.id for s in specs))
        assert got["severity"] == max((s.severity for s in specs), key=SEVERITY_RANK.get)
        scores = [s.score for s in specs if s.score is not None]
        assert (float(got["score"]) if got["score"] else None) == (max(scores) if scores
                                                                   else None)
        assert got["pipeline_id"] == str(tp.id) and got["alert_time"]
    counts = Counter(by_rule[rule_id].severity for rule_id, _ in expected)
    got_counts = {k: int(v) for k, v in client.hgetall(f"fraud:counts:{tp.id}").items()}
    assert got_counts == dict(counts)
    assert client.xlen(f"fraud:alerts:{tp.id}") == len(expected)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable as a module)."""
    return SimpleNamespace(
        RuleSpec=RuleSpec, base_rules=base_rules, SCHEMA=SCHEMA, TRIGGER=TRIGGER,
        S3_ENDPOINT=S3_ENDPOINT, SEVERITY_RANK=SEVERITY_RANK, committed_offsets=committed_offsets,
        local_checkpoint=local_checkpoint, wait_for=wait_for, expected_alerts=expected_alerts,
        expected_quarantine=expected_quarantine, reason_kind=reason_kind,
        check_sinks=check_sinks, REDIS_URL=REDIS_URL, TEST_JAVA_OPTIONS=TEST_JAVA_OPTIONS,
        committed_of=committed_of, wave=wave, archive_checkpoint=archive_checkpoint,
        BOOTSTRAP=BOOTSTRAP,
    )
