"""Asset checks on the lake: is data arriving, is too much rejected, do the alert copies agree.

Each check covers every pipeline and lists the per-pipeline figures as metadata; it fails when
any pipeline breaks the rule (the description names which).
"""


from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    Config,
    asset_check,
)
from sqlalchemy import Connection, func, select

from catalog.tables import fraud_alerts
from orchestration.lake.assets import bronze_events, quarantine, silver_alerts
from orchestration.lake.resources import LakeResource, ObjectStoreResource
from orchestration.lib.catalog import CatalogResource


class FreshnessConfig(Config):
    max_age_minutes: float = 15.0


class QuarantineConfig(Config):
    max_share: float = 0.05


def alert_counts_by_day(conn: Connection, pipeline_id: int, before: date) -> dict[date, int]:
    """Alerts in Postgres per UTC day of ``alert_timestamp``, for days before ``before``."""
    day = func.date(func.timezone("UTC", fraud_alerts.c.alert_timestamp))
    rows = conn.execute(
        select(day.label("day"), func.count().label("n"))
        .where(fraud_alerts.c.pipeline_id == pipeline_id, day < before)
        .group_by(day)
    ).all()
    return {r.day: int(r.n) for r in rows}


def _result(bad: dict[str, str], good: dict[str, str], rule: str,
            severity=AssetCheckSeverity.WARN) -> AssetCheckResult:
    return AssetCheckResult(
        passed=not bad, severity=severity,
        description=rule if not bad else f"{rule} — failing: " + "; ".join(
            f"pipeline {k}: {v}" for k, v in bad.items()),
        metadata={f"pipeline_{k}": v for k, v in {**good, **bad}.items()},
    )


@asset_check(asset=bronze_events.key, description="An active pipeline's bronze table got a commit "
             "within the last max_age_minutes.")
def bronze_freshness(context: AssetCheckExecutionContext, config: FreshnessConfig,
                     catalog: CatalogResource, object_store: ObjectStoreResource,
                     lake: LakeResource) -> AssetCheckResult:
    now = datetime.now(UTC)
    bad, good = {}, {}
    for p in catalog.pipelines():
        if p["status"] != "active":
            good[str(p["id"])] = f"{p['status']}: not checked"
            continue
        stats = object_store.stats(lake.tables(p["id"])["bronze_events"])
        age = now - stats.last_commit if stats.last_commit else None
        text = f"last commit {stats.last_commit or 'never'}"
        if age is None or age > timedelta(minutes=config.max_age_minutes):
            bad[str(p["id"])] = text
        else:
            good[str(p["id"])] = text
    return _result(bad, good, f"bronze of active pipelines fresher than "
                              f"{config.max_age_minutes} min")


@asset_check(asset=quarantine.key, description="Quarantined records stay below max_share of all "
             "records received.")
def quarantine_rate(context: AssetCheckExecutionContext, config: QuarantineConfig,
                    catalog: CatalogResource, object_store: ObjectStoreResource,
                    lake: LakeResource) -> AssetCheckResult:
    bad, good = {}, {}
    for p in catalog.pipelines():
        tables = lake.tables(p["id"])
        valid = object_store.stats(tables["bronze_events"]).rows or 0
        rejected = object_store.stats(tables["quarantine"]).rows or 0
        total = valid + rejected
        share = rejected / total if total else 0.0
        text = f"{rejected}/{total} quarantined ({share:.2%})"
        (bad if share > config.max_share else good)[str(p["id"])] = text
    return _result(bad, good, f"quarantine share at most {config.max_share:.0%}")


@asset_check(asset=silver_alerts.key, description="For every closed UTC day, alerts in Postgres "
             "equal alerts in the Delta table.")
def alerts_reconciled(context: AssetCheckExecutionContext, catalog: CatalogResource,
                      lake: LakeResource) -> AssetCheckResult:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    today = datetime.now(UTC).date()
    spark = lake.session("sentinel-checks")
    bad, good = {}, {}
    for p in catalog.pipelines():
        path = lake.tables(p["id"])["silver_alerts"]
        delta: dict = {}
        if DeltaTable.isDeltaTable(spark, path):
            day = F.to_date(F.col("alert_timestamp"))
            rows = (spark.read.format("delta").load(path).where(day < F.lit(today))
                    .groupBy(day.alias("day")).count().collect())
            delta = {r["day"]: int(r["count"]) for r in rows}
        pg = catalog.call(alert_counts_by_day, p["id"], today)
        diff = {str(d): (pg.get(d, 0), delta.get(d, 0)) for d in sorted(set(pg) | set(delta))
                if pg.get(d, 0) != delta.get(d, 0)}
        if diff:
            bad[str(p["id"])] = ", ".join(f"{d}: postgres {a} vs delta {b}"
                                          for d, (a, b) in diff.items())
        else:
            good[str(p["id"])] = f"{sum(pg.values())} alerts over {len(pg)} closed day(s) agree"
    return _result(bad, good, "alerts in Postgres equal alerts in Delta for closed days",
                   AssetCheckSeverity.ERROR)


LAKE_CHECKS = [bronze_freshness, quarantine_rate, alerts_reconciled]
