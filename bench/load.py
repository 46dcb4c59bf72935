"""A steady load of JSON events into a Kafka topic, written by Spark (a JVM producer holds
20,000 events/s on a fraction of a core, where a Python one needs a whole core for ~4,600/s
and takes it from the engine it measures).

    .venv/bin/python -m bench.load --topic T [T ...] --rate 5000 --seconds 60 --shape velocity \
        --tag x

Every ``TICK`` seconds a thread writes, in one Spark batch job, the events due by then
(``rate`` x the time since the start): the events arrive evenly, and a tick that ran late is
made up by the next one, so the rate holds whatever else the machine runs (Spark's ``rate``
source emits a whole second's rows at once, stamped across the second before; its
``rate-micro-batch`` source falls behind its rate when a batch is slower than its trigger).
Each event's id is ``<tag>-<ms>-<n>``, ``ms`` being the wall clock when its job was submitted,
before the record is sent: a latency measured from it is never flattering. The record key is
the event id. With several topics every topic gets ``rate`` events/s, all written by the same
job per tick. Shapes:

* ``throughput`` (``bench.throughput.SCHEMA``): ``user_id = n % USERS``, so the events that
  match the benchmark rules are known from ``n``;
* ``latency`` (``bench.latency.SCHEMA``): ``amount`` uniform in [0, 100);
* ``velocity`` (``bench.velocity.SCHEMA``): ``user_id`` hashed into ``--keys`` keys, ``merchant``
  into a tenth as many, ``amount`` exponential around 300.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from catalog.settings import get_settings
from streaming.kafka_io import write_records
from streaming.session import build_session

TICK = 0.2  # seconds between two writes
PARTITIONS = 3
USERS = 5000  # throughput shape: user_id = n % USERS


def _throughput_event(n: Column, keys: int) -> list[Column]:
    return [
        (n % USERS).alias("user_id"),
        ((n * 7919) % 100_000 / 100.0).alias("amount"),
        F.when(n % 2 == 0, F.lit("EUR")).otherwise(F.lit("USD")).alias("currency"),
        F.concat(F.lit("m"), (n % 97).cast("string")).alias("merchant"),
    ]


def _latency_event(n: Column, keys: int) -> list[Column]:
    return [(F.pmod(F.xxhash64(n, F.lit(4)), F.lit(10_000)) / 100.0).alias("amount")]


def _velocity_event(n: Column, keys: int) -> list[Column]:
    uniform = (F.pmod(F.xxhash64(n, F.lit(3)), F.lit(1_000_000)) + 0.5) / 1_000_000
    return [
        F.pmod(F.xxhash64(n, F.lit(1)), F.lit(keys)).alias("user_id"),
        F.round(-F.log(uniform) * 300, 2).alias("amount"),
        F.concat(F.lit("m"), F.pmod(F.xxhash64(n, F.lit(2)), F.lit(max(keys // 10, 1)))
                 .cast("string")).alias("merchant"),
    ]


SHAPES = {"throughput": _throughput_event, "latency": _latency_event,
          "velocity": _velocity_event}


class Load:
    """Events at ``rate``/s into ``topic`` (or each of several) from ``start()`` until
    ``stop()``; ``sent`` counts the events written so far (per topic). A write slower than a
    tick delays events, never drops them: ``stop()`` writes what was due by its call."""

    def __init__(self, spark: SparkSession, topic: str | Sequence[str], rate: float, tag: str,
                 *, shape: str = "throughput", keys: int = USERS) -> None:
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self.spark, self.rate, self.tag = spark, rate, tag
        self.shape, self.keys = SHAPES[shape], keys
        self.sent = 0
        self._stop = threading.Event()
        self._stopped_at = 0.0
        self._thread = threading.Thread(target=self._run, name="bench-load", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop after the job under way and the events due by now; re-raises a failed write.
        Returns the events sent."""
        self._stopped_at = time.monotonic()
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"bench load into {', '.join(self.topics)} failed") from self._error
        return self.sent

    def _write(self, first: int, end: int) -> None:
        ms = int(time.time() * 1000)
        n = F.col("id")
        event_id = F.concat_ws("-", F.lit(self.tag), F.lit(str(ms)), n.cast("string"))
        # Event times spread evenly over the tick before ``ms`` (never after the send): a
        # tick's thousands of events at one instant would tie across partitions.
        spread = ((n - first) * (TICK * 1000) / (end - first)).cast("long")
        event_time = F.timestamp_millis(F.lit(ms - int(TICK * 1000)) + spread)
        event = F.struct(
            event_id.alias("transaction_id"),
            *self.shape(n, self.keys),
            F.date_format(event_time, "yyyy-MM-dd'T'HH:mm:ss.SSSXXX").alias("event_time"),
        )
        rows = self.spark.range(first, end, numPartitions=PARTITIONS)
        columns = [event_id.alias("key"), F.to_json(event).alias("value")]
        topic: str | None = self.topics[0]
        if len(self.topics) > 1:
            columns.append(F.explode(F.array(*map(F.lit, self.topics))).alias("topic"))
            topic = None
        write_records(rows.select(*columns),
                      bootstrap=get_settings().kafka_bootstrap_servers, topic=topic)

    def _catch_up(self, due: int) -> None:
        if due > self.sent:
            self._write(self.sent, due)
            self.sent = due

    def _run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stop.wait(TICK - (time.monotonic() - started) % TICK):
                self._catch_up(int((time.monotonic() - started) * self.rate))
            self._catch_up(int((self._stopped_at - started) * self.rate))
        except BaseException as exc:  # surfaced by stop()
            self._error = exc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topic", required=True, nargs="+", help="one or more topics")
    ap.add_argument("--rate", type=int, required=True, help="events/s")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--tag", required=True, help="the event ids' prefix")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="throughput")
    ap.add_argument("--keys", type=int, default=USERS, help="velocity shape: distinct user ids")
    args = ap.parse_args(argv)
    spark = build_session("bench-load", master="local[1]", delta=False)
    try:
        load = Load(spark, args.topic, args.rate, args.tag, shape=args.shape,
                    keys=args.keys).start()
        print(f"loading {args.rate} events/s into {', '.join(args.topic)}", flush=True)
        time.sleep(args.seconds)
        sent = load.stop()
    finally:
        spark.stop()
    print(f"{sent} events into {', '.join(args.topic)} in {args.seconds:g} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
