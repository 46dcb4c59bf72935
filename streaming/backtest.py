"""Rule backtests on the archive, and the runner of every queued job.

A backtest evaluates a candidate expression on a pipeline's bronze events, pinned to one Delta
version (reported), with exactly the stream's semantics: the same non-ANSI session
(``streaming.session``), the same analysis and one-pass projection (``streaming.rules``), the
same event time (the schema's time field, else the Kafka timestamp). It stores events scanned,
hits, hit rate, hits per day, a bounded sample of matching events and, for every active rule,
its alerts on the scanned events and how many of the hits they share. It never writes alerts;
a look-back (``streaming.lookback``) does. A velocity rule's window terms are computed over the
archive first (``streaming.velocity_batch``), with the velocity path's semantics.

``python -m streaming.backtest --id N [--rerun]`` runs one job, ``--pending`` drains the queue;
the Dagster job ``rule_backtest`` runs the former for each queued job.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from catalog.rules.problems import RuleValidationError
from catalog.settings import get_settings
from streaming import backtest_jobs as jobs
from streaming.backtest_jobs import BacktestError
from streaming.lookback import lookback
from streaming.pinned import event_time, read_pinned
from streaming.pipeline import Paths, Pipeline, load_pipeline
from streaming.rules import Rule, analyse, evaluate, load_active_rules
from streaming.session import build_session
from streaming.velocity_batch import rule_events

log = logging.getLogger("streaming.backtest")
TIME_COL = "_bt_event_time"


def summarize(scanned: int, per_day: dict[str, int], distinct_hits: int,
              sample: list[dict[str, Any]], overlap: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored results of a backtest (pure: tested without Spark)."""
    hits = sum(per_day.values())
    return {
        "events_scanned": scanned,
        "hits": hits,
        "hit_rate": hits / scanned if scanned else 0.0,
        "distinct_hit_event_ids": distinct_hits,
        "hits_per_day": dict(sorted(per_day.items())),
        "sample": sample,
        "overlap": [
            dict(o, shared_share_of_hits=o["shared"] / hits if hits else 0.0) for o in overlap
        ],
    }


def _sample(matches: DataFrame, size: int) -> list[dict[str, Any]]:
    if size <= 0:
        return []
    rows = (
        matches.orderBy(TIME_COL, "_event_id").limit(size)
        .select("_event_id", F.date_format(TIME_COL, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
                .alias("t"), "_data")
        .collect()
    )
    return [{"event_id": r["_event_id"], "event_time": r["t"], "event": json.loads(r["_data"])}
            for r in rows]


def _overlap(spark: SparkSession, pipeline_id: int, alerts_path: str, events: DataFrame,
             matches: DataFrame) -> tuple[list[dict[str, Any]], int | None]:
    """Per active rule: its alerts on the scanned events, and how many of the hits they share."""
    _, active = load_active_rules(pipeline_id)
    alerts, version = read_pinned(spark, alerts_path)
    counts: dict[int, tuple[int, int]] = {}
    if active and alerts is not None:
        scanned_ids = events.select(F.col("_event_id").alias("event_id")).distinct()
        hit_ids = matches.select(F.col("_event_id").alias("event_id"), F.lit(True).alias("_hit"))
        agg = (
            alerts.where(F.col("rule_id").isin([r.id for r in active]))
            .select("rule_id", "event_id")
            .join(scanned_ids, "event_id", "left_semi")
            .join(hit_ids.distinct(), "event_id", "left")
            .groupBy("rule_id")
            .agg(F.countDistinct("event_id").alias("alerts"),
                 F.countDistinct(F.when(F.col("_hit"), F.col("event_id"))).alias("shared"))
        )
        counts = {int(r["rule_id"]): (int(r["alerts"]), int(r["shared"])) for r in agg.collect()}
    return [
        {"rule_id": r.id, "rule_version": r.version, "severity": r.severity,
         "description": r.description, "rule_expression": r.expression,
         "alerts": counts.get(r.id, (0, 0))[0], "shared": counts.get(r.id, (0, 0))[1]}
        for r in active
    ], version


def backtest(spark: SparkSession, pipeline: Pipeline, paths: Paths, job: jobs.Job
             ) -> tuple[int | None, dict[str, Any]]:
    """``(bronze Delta version read, results)`` of one backtest job."""
    fields = pipeline.fields
    bronze, version = read_pinned(spark, paths.events)
    if bronze is None:
        results = summarize(0, {}, 0, [], [])
        return None, dict(results, note=f"no archived events yet (no Delta table at "
                                        f"{paths.events})")
    try:
        selected, expression = rule_events(spark, bronze, paths.quarantine, fields,
                                           job.expression, job.since, job.until)
    except RuleValidationError as exc:
        raise BacktestError(f"the expression is not a valid rule any more: {exc}") from None
    rule = Rule(0, expression, "info", None, "backtest", 0)
    error = analyse(selected, rule)
    if error:
        raise BacktestError(f"the expression does not analyse on the archived events: {error}")
    events = selected.persist(StorageLevel.MEMORY_AND_DISK)
    matches = None
    try:
        scanned = events.count()
        data = F.to_json(F.struct(*[F.col(f"`{f.name}`") for f in fields]))
        matches = evaluate(events, [rule]).select(
            "_event_id", event_time(fields).alias(TIME_COL), data.alias("_data")
        ).persist(StorageLevel.MEMORY_AND_DISK)
        per_day = {
            str(r["day"]): int(r["n"])
            for r in matches.groupBy(F.to_date(TIME_COL).alias("day"))
            .agg(F.count("*").alias("n")).collect()
        }
        distinct = matches.select("_event_id").distinct().count()
        sample = _sample(matches, job.sample_size)
        overlap, alerts_version = _overlap(spark, pipeline.id, paths.alerts, events, matches)
    finally:
        events.unpersist()
        if matches is not None:
            matches.unpersist()
    results = summarize(scanned, per_day, distinct, sample, overlap)
    results.update(alerts_delta_version=alerts_version, events_table=paths.events)
    return version, results


def run_job(spark: SparkSession, job: jobs.Job) -> dict[str, Any]:
    """Run a claimed job and record its outcome; a failure is recorded, then raised."""
    started = time.monotonic()
    try:
        pipeline = load_pipeline(job.pipeline_id)
        paths = Paths(get_settings().warehouse_root, pipeline.slug)
        if job.kind == "lookback":
            version, results = lookback(spark, pipeline, paths, job)
        else:
            version, results = backtest(spark, pipeline, paths, job)
    except BaseException as exc:
        jobs.finish(job.id, error=jobs.describe(exc))
        log.error("%s %s failed: %s", job.kind, job.id, jobs.describe(exc))
        raise
    results["duration_seconds"] = round(time.monotonic() - started, 2)
    jobs.finish(job.id, delta_version=version, results=results)
    log.info("%s %s succeeded: delta_version=%s %s", job.kind, job.id, version,
             {k: v for k, v in results.items() if k not in ("sample", "overlap")})
    return results


def run_backtest(spark: SparkSession, backtest_id: int, *, rerun: bool = False
                 ) -> dict[str, Any]:
    """Claim and run one job (backtest or look-back) by id; returns its results."""
    return run_job(spark, jobs.claim(backtest_id, rerun=rerun))


def run_pending(spark: SparkSession, pipeline_id: int | None = None
                ) -> tuple[list[int], list[int]]:
    """Drain the queue (of one pipeline when given): ``(succeeded ids, failed ids)``; one
    failure does not stop the rest."""
    done: list[int] = []
    failed: list[int] = []
    while (job := jobs.claim_next(pipeline_id)) is not None:
        try:
            run_job(spark, job)
            done.append(job.id)
        except Exception:
            failed.append(job.id)
    return done, failed


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    ap = argparse.ArgumentParser(description="Run queued rule backtests and look-backs.")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, help="run this job")
    which.add_argument("--pending", action="store_true", help="run every queued job")
    ap.add_argument("--rerun", action="store_true", help="with --id: run a finished job again")
    ap.add_argument("--pipeline-id", type=int, help="with --pending: only this pipeline's jobs")
    args = ap.parse_args(argv)
    if args.id is not None:
        try:
            job = jobs.claim(args.id, rerun=args.rerun)
        except jobs.JobNotClaimable as exc:
            log.error("%s", exc)
            return 2
    try:
        spark = build_session("sentinel-backtest")
    except BaseException as exc:
        if args.id is not None:  # claimed: it must not stay "running"
            jobs.finish(job.id, error=jobs.describe(exc))
        raise
    if args.id is not None:
        try:
            run_job(spark, job)
        except Exception:
            return 1
        return 0
    done, failed = run_pending(spark, args.pipeline_id)
    log.info("backtests: %d succeeded %s, %d failed %s", len(done), done, len(failed), failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
