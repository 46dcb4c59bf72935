"""The batch layer on a real stream: Kafka → streaming job → Delta + Postgres → tables registered →
``dagster asset materialize`` of the dbt assets → marts, read back over the SQL endpoint.

The stream and the Dagster build are the conftest's session fixtures ``streamed`` and
``dagster_build`` (shared with test_dbt_models.py). Every expectation is computed here
directly from the stream's outputs: a Spark read of the Delta tables and SQL on Postgres
``fraud_alerts``; the marts must equal them.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from catalog.db import get_engine
from orchestration.dbt.project import ensure_manifest
from orchestration.lake.registration import load_pipelines
from orchestration.lake.views import assign_slugs
from tests.integration.lakehouse.conftest import DagsterBuild, Lake, Streamed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


def manifest_nodes(kind: str) -> list[dict[str, Any]]:
    manifest = json.loads(ensure_manifest().read_text())
    return [n for n in manifest["nodes"].values() if n["resource_type"] == kind]


@pytest.fixture(scope="module")
def truth(lake: Lake, streamed: Streamed) -> dict[str, Any]:
    """The streamed pipeline's totals, straight from its Delta tables and Postgres."""
    from pyspark.sql import functions as F

    spark = lake.session()
    base = f"{streamed.warehouse}/bronze/pipeline_{streamed.id}"
    bronze = spark.read.format("delta").load(f"{base}/events")
    quarantine = spark.read.format("delta").load(f"{base}/quarantine")
    silver = spark.read.format("delta").load(
        f"{streamed.warehouse}/silver/pipeline_{streamed.id}/alerts")
    with get_engine().connect() as conn:
        pg = conn.exec_driver_sql(
            "select rule_id, severity, event_id, "
            "to_char(event_time at time zone 'UTC', 'YYYY-MM-DD HH24:00') as hour "
            "from fraud_alerts where pipeline_id = %s", (streamed.id,)).all()
    events_by_day = {str(r["event_date"]): r["count"]
                     for r in bronze.groupBy("event_date").count().collect()}
    distinct_by_day = {str(r["event_date"]): r["n"] for r in bronze.groupBy("event_date")
                       .agg(F.countDistinct("_event_id").alias("n")).collect()}
    reasons = quarantine.select(F.trim(F.split("reason", ":")[0]).alias("category"),
                                "quarantine_date")
    return {
        "bronze": bronze.count(),
        "keys": bronze.select("transaction_id").distinct().count(),
        "events_by_day": events_by_day,
        "distinct_by_day": distinct_by_day,
        "quarantined": quarantine.count(),
        "quarantined_by_day": {str(r["quarantine_date"]): r["count"] for r in
                               quarantine.groupBy("quarantine_date").count().collect()},
        "reasons": {r["category"]: r["count"] for r in
                    reasons.groupBy("category").count().collect()},
        "reason_days": quarantine.select("reason", "quarantine_date").distinct().count(),
        "silver": silver.count(),
        "pg": pg,
    }


def test_the_stream_filled_bronze_quarantine_and_alerts(streamed: Streamed, truth) -> None:
    """The stream really ran: what the Python twins of the events and rules predict."""
    from tests.integration.streaming import conftest as st

    sent = streamed.pipeline.sent
    assert truth["bronze"] == sum(1 for e in sent if e.event) > 200
    assert truth["quarantined"] == sum(1 for e in sent if e.malformed) > 0
    expected = st.expected_alerts(streamed.pipeline)
    assert {(r.rule_id, r.event_id) for r in truth["pg"]} == expected
    assert len(truth["pg"]) == truth["silver"] == len(expected)
    assert len({r.rule_id for r in truth["pg"]}) == 3  # every rule fired


def test_dagster_built_every_model_and_every_dbt_test_passed(dagster_build: DagsterBuild):
    assert dagster_build.run_status == "SUCCESS", dagster_build.output
    models = {f"{n['config']['schema']}/{n['name']}" for n in manifest_nodes("model")}
    assert len(models) == 9
    assert dagster_build.materialized == models
    tests = {n["name"] for n in manifest_nodes("test")}
    assert len(tests) >= 20
    ran = {key.split(":", 1)[1] for key in dagster_build.checks}
    assert ran == tests  # every dbt test, the singular ones included, ran as an asset check
    failed = [k for k, ok in dagster_build.checks.items() if not ok]
    assert not failed, failed


def rows(sql_text: str) -> list[tuple]:
    from orchestration.lake.registration import Sql, connect

    sql = Sql(connect())
    try:
        return sql.rows(sql_text)
    finally:
        sql.close()


def test_mart_totals_equal_bronze_and_postgres(lake: Lake, streamed: Streamed, truth,
                                               dagster_build: DagsterBuild) -> None:
    gold, pid, pg = f"{lake.prefix}gold", streamed.id, truth["pg"]

    health = rows("select cast(activity_date as string), events, distinct_events, quarantined, "
                  f"alerts from {gold}.fct_pipeline_health_daily where pipeline_id = {pid}")
    alerts_by_day = Counter(r.hour[:10] for r in pg)
    days = set(truth["events_by_day"]) | set(truth["quarantined_by_day"]) | set(alerts_by_day)
    assert {r[0]: tuple(r[1:]) for r in health} == {
        d: (truth["events_by_day"].get(d, 0), truth["distinct_by_day"].get(d, 0),
            truth["quarantined_by_day"].get(d, 0), alerts_by_day.get(d, 0)) for d in days}

    daily = rows("select rule_id, severity, cast(alert_date as string), alerts "
                 f"from {gold}.fct_alerts_daily where pipeline_id = {pid}")
    assert {r[:3]: r[3] for r in daily} == Counter((r.rule_id, r.severity, r.hour[:10])
                                                   for r in pg)
    hourly = rows("select rule_id, severity, date_format(alert_hour, 'yyyy-MM-dd HH:mm'), "
                  f"alerts from {gold}.fct_alerts_hourly where pipeline_id = {pid}")
    assert {r[:3]: r[3] for r in hourly} == Counter((r.rule_id, r.severity, r.hour) for r in pg)

    per_rule = rows("select rule_id, sum(alerts), min(events_seen), max(events_seen) "
                    f"from {gold}.fct_rule_effectiveness where pipeline_id = {pid} "
                    "group by rule_id")
    assert {r[0]: r[1] for r in per_rule} == Counter(r.rule_id for r in pg)
    seen = rows("select cast(event_date as string), events_seen "
                f"from {gold}.fct_rule_effectiveness where pipeline_id = {pid}")
    assert all(n == truth["distinct_by_day"][d] for d, n in seen)

    (entities,) = rows("select count(*), sum(events), sum(alerts) "
                       f"from {gold}.dim_entity_risk where pipeline_id = {pid}")
    assert entities == (truth["keys"], truth["bronze"], len(pg))

    reasons = rows("select reason_category, sum(quarantined) "
                   f"from {gold}.fct_quarantine_reasons where pipeline_id = {pid} "
                   "group by reason_category")
    assert {r[0]: r[1] for r in reasons} == truth["reasons"]


def test_a_sql_client_selects_from_the_lake_tables_and_every_model(
        lake: Lake, streamed: Streamed, truth, dagster_build: DagsterBuild) -> None:
    """PyHive on the endpoint, as any SQL client: the registered tables, the union views and
    every dbt model of the manifest (staging and marts) answer with the stream's rows."""
    from pyhive import hive

    from tests.integration.lakehouse.conftest import HOST, PORT

    pid, pre, pg = streamed.id, lake.prefix, truth["pg"]
    slug = assign_slugs((p.id, p.name) for p in load_pipelines())[pid]
    expected = {
        f"{pre}bronze.{slug}_events": truth["bronze"],
        f"{pre}bronze.{slug}_quarantine": truth["quarantined"],
        f"{pre}silver.{slug}_alerts": len(pg),
        f"{pre}bronze.all_events": truth["bronze"],
        f"{pre}bronze.all_quarantine": truth["quarantined"],
        f"{pre}silver.all_alerts": len(pg),
        # rows per pipeline of each model, from the grain its YAML states
        f"{pre}staging.stg_events": truth["bronze"],
        f"{pre}staging.stg_quarantine": truth["quarantined"],
        f"{pre}staging.stg_alerts": len(pg),
        f"{pre}gold.fct_alerts_hourly": len({(r.rule_id, r.severity, r.hour) for r in pg}),
        f"{pre}gold.fct_alerts_daily": len({(r.rule_id, r.severity, r.hour[:10]) for r in pg}),
        f"{pre}gold.fct_rule_effectiveness": len({(r.rule_id, r.hour[:10]) for r in pg}),
        f"{pre}gold.dim_entity_risk": truth["keys"],
        f"{pre}gold.fct_pipeline_health_daily": len(
            set(truth["events_by_day"]) | set(truth["quarantined_by_day"])
            | {r.hour[:10] for r in pg}),
        f"{pre}gold.fct_quarantine_reasons": truth["reason_days"],
    }
    models = {f"{pre}{n['config']['schema']}.{n['alias'] or n['name']}"
              for n in manifest_nodes("model")}
    assert models <= set(expected), f"a model without an expected row count: {models}"
    conn = hive.connect(host=HOST, port=PORT, username="sentinel-it-client", auth="NONE")
    cursor = conn.cursor()
    got = {}
    try:
        for relation in expected:
            cursor.execute(f"select count(*) from {relation} where pipeline_id = {pid}"
                           if ".all_" in relation or relation in models
                           else f"select count(*) from {relation}")
            (got[relation],) = cursor.fetchone()
        cursor.execute(f"select * from {pre}gold.fct_alerts_daily where pipeline_id = {pid} "
                       "order by alerts desc limit 1")
        names = [d[0] for d in cursor.description]
        top = dict(zip(names, cursor.fetchone(), strict=True))
    finally:
        cursor.close()
        conn.close()
    assert got == expected
    assert all(n > 0 for n in got.values())
    assert top["alerts"] == max(Counter((r.rule_id, r.hour[:10]) for r in pg).values())


def test_lake_change_sensor_sees_the_streams_delta_versions(lake: Lake, streamed: Streamed) -> None:
    """The sensor that rebuilds the marts on new commits reads the versions Spark reports."""
    from orchestration.dbt.sensors import lake_versions
    from orchestration.lake.resources import LakeResource, ObjectStoreResource
    from orchestration.lib.catalog import CatalogResource

    spark = lake.session()
    versions = lake_versions(CatalogResource(), LakeResource(warehouse_root=streamed.warehouse),
                             ObjectStoreResource())
    tables = LakeResource(warehouse_root=streamed.warehouse).tables(streamed.id)
    for key, path in tables.items():
        latest = spark.sql(f"describe history delta.`{path}`").agg({"version": "max"}).first()[0]
        assert versions[f"{streamed.id}/{key}"] == latest >= 0
