"""The alert fan-out: the alerts topic → Postgres ``fraud_alerts`` and Redis, exactly once.

A Kafka consumer of one pipeline's alerts topic (all partitions assigned, offsets committed
under the group ``sentinel-fanout.<alerts topic>``). What one poll returns is written as one
batch: Postgres (``COPY`` → ``INSERT … ON CONFLICT (alert_id) DO NOTHING``), then Redis (one
idempotent script per alert, pipelined), and only then are the offsets committed. A sink that
is down holds the batch and retries it (bounded backoff inside each attempt, then a pause),
never skipping it; a crash replays from the last commit into sinks that ignore what they have.
The detect path's Kafka sink is at-least-once too: both kinds of repeat land as no-ops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from streaming.alerts import message_row
from streaming.sinks import postgres
from streaming.sinks.redis_sink import RedisAlertSink
from streaming.topics import end_offsets

log = logging.getLogger(__name__)


def group_id(topic: str) -> str:
    """The consumer group under which the fan-out of an alerts topic commits its offsets."""
    return f"sentinel-fanout.{topic}"


def batch_rows(records: Sequence[Any]) -> list[dict[str, Any]]:
    """The alerts of one poll as sink rows, first occurrence of each ``alert_id`` kept."""
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        row = message_row(record.value, record.timestamp)
        rows.setdefault(row["alert_id"], row)
    return list(rows.values())


@dataclass
class FanoutStats:
    """What the fan-out has done since it started (for logs and the stream's progress)."""

    polls: int = 0
    records: int = 0
    new_pg: int = 0
    new_redis: int = 0
    retries: int = 0
    batches: int = 0
    sink_seconds: float = 0.0  # time in the sinks (Postgres + Redis), retries included
    commit_seconds: float = 0.0
    last_error: str | None = None
    positions: dict[int, int] = field(default_factory=dict)

    def summary(self) -> str:
        per_batch = max(self.batches, 1)
        return (f"polls={self.polls} batches={self.batches} records={self.records} "
                f"new_pg={self.new_pg} new_redis={self.new_redis} retries={self.retries} "
                f"sink_ms_per_batch={1000 * self.sink_seconds / per_batch:.1f} "
                f"commit_ms_per_batch={1000 * self.commit_seconds / per_batch:.1f}")


class Fanout:
    """One pipeline's alert fan-out, run as a thread of the stream process (or alone).

    ``sink`` writes a batch of rows to every serving sink and raises on failure; the default
    writes Postgres then Redis. ``stop`` lets the current batch finish; ``drain`` first waits
    until everything on the topic at that moment is written. Every ``REPORT_SECONDS`` with new
    records it logs its counters and its time per batch in the sinks and in the commit.
    """

    REPORT_SECONDS = 30.0

    def __init__(self, pipeline_id: int, topic: str, *, bootstrap: str, redis: RedisAlertSink,
                 poll_ms: int = 500, max_records: int = 5000, retry_pause: float = 2.0,
                 sink: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.pipeline_id = pipeline_id
        self.topic = topic
        self.bootstrap = bootstrap
        self.redis = redis
        self.poll_ms = poll_ms
        self.max_records = max_records
        self.retry_pause = retry_pause
        self.sink = sink or self._write
        self.stats = FanoutStats()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: KafkaConsumer | None = None
        # The next offset per partition after the records both sinks hold: all a commit may say.
        self._written: dict[TopicPartition, OffsetAndMetadata] = {}

    def _write(self, rows: list[dict[str, Any]]) -> None:
        self.stats.new_pg += postgres.write_alerts(rows)
        self.stats.new_redis += self.redis.write_alerts(rows)

    def _connect(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group_id(self.topic),
            enable_auto_commit=False, auto_offset_reset="earliest",
            client_id=f"sentinel-fanout-{self.pipeline_id}", fetch_max_wait_ms=self.poll_ms,
        )
        deadline = time.monotonic() + 60
        while not (parts := consumer.partitions_for_topic(self.topic)):
            if time.monotonic() > deadline:
                consumer.close()
                raise RuntimeError(f"alerts topic {self.topic} has no partitions")
            time.sleep(0.5)
        consumer.assign([TopicPartition(self.topic, p) for p in sorted(parts)])
        return consumer

    def _deliver(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` to the sinks until it succeeds or a stop is requested."""
        while True:
            try:
                self.sink(rows)
                self.stats.last_error = None
                return
            except Exception as exc:  # a sink is down: hold the batch, never skip it
                self.stats.retries += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("pipeline=%s fan-out: sinks failed, retrying the batch of %d: %s",
                            self.pipeline_id, len(rows), exc)
                if self._stop.wait(self.retry_pause):
                    raise

    def step(self, consumer: KafkaConsumer) -> int:
        """One poll → sinks → commit; returns the records handled."""
        polled = consumer.poll(timeout_ms=self.poll_ms, max_records=self.max_records)
        records = [r for batch in polled.values() for r in batch]
        self.stats.polls += 1
        if records:
            started = time.perf_counter()
            self._deliver(batch_rows(records))
            written = time.perf_counter()
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                done = self._written.get(tp)
                if done is None or r.offset + 1 > done.offset:
                    self._written[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
            # Not waited for: the sinks already hold the batch, so a commit lost in a crash
            # only replays it into sinks that ignore it. A stop commits synchronously.
            consumer.commit_async(offsets=dict(self._written))
            self.stats.sink_seconds += written - started
            self.stats.commit_seconds += time.perf_counter() - written
            self.stats.batches += 1
            self.stats.records += len(records)
        for tp in consumer.assignment():  # everything before these is written
            self.stats.positions[tp.partition] = consumer.position(tp)
        return len(records)

    def run(self) -> None:
        """Consume until ``stop``; an error ends the loop and is kept in ``error``."""
        try:
            self._consumer = self._connect()
            log.info("pipeline=%s fan-out consuming %s", self.pipeline_id, self.topic)
            reported, last = time.monotonic(), 0
            while not self._stop.is_set():
                self.step(self._consumer)
                if time.monotonic() - reported >= self.REPORT_SECONDS:
                    if self.stats.records != last:
                        log.info("pipeline=%s fan-out %s", self.pipeline_id,
                                 self.stats.summary())
                    reported, last = time.monotonic(), self.stats.records
        except BaseException as exc:
            if not self._stop.is_set():
                log.exception("pipeline=%s fan-out failed", self.pipeline_id)
                self.error = exc
        finally:
            if self._consumer is not None:
                if self.error is None and self._written:
                    try:
                        # What the sinks hold, for the next start: never the position, which
                        # is past a batch whose delivery a stop interrupted.
                        self._consumer.commit(offsets=dict(self._written))
                    except Exception as exc:  # the next start replays it: no loss
                        log.warning("pipeline=%s fan-out: final commit failed: %s",
                                    self.pipeline_id, exc)
                self._consumer.close(autocommit=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"fanout-{self.pipeline_id}",
                                        daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, timeout: float) -> bool:
        """Wait until every record now on the topic is written (False on timeout)."""
        ends = end_offsets(self.bootstrap, self.topic)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            if all(self.stats.positions.get(part, 0) >= end
                   for part, end in ends.items() if end > 0):
                return True
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
