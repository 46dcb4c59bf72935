"""Superset provisioned as code: objects exist once, charts equal the data, SQL Lab.

Expectations are computed here from the generated lake data (plain Python), from the marts
through the SQL endpoint, or from Postgres, never from what the provisioning printed. The
placeholders before the first build and the Fraud Overview in a browser: test_first_run.py.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
from sqlalchemy import text

from catalog.db import get_engine
from orchestration.lake.registration import Sql, connect, load_pipelines
from orchestration.lake.views import desired_tables
from tests.integration.superset.conftest import Api, Provisioned

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

DATABASES = {"Sentinel Lakehouse", "Sentinel Alerts"}
DASHBOARDS = {"Fraud Overview", "Pipeline Health", "Live Alerts"}
MARTS = {"fct_alerts_hourly", "fct_alerts_daily", "fct_rule_effectiveness", "dim_entity_risk",
         "fct_pipeline_health_daily", "fct_quarantine_reasons"}
DATASETS = MARTS | {"fraud_alerts_by_pipeline", "stream_runs_by_pipeline", "live_alerts"}
FRAUD_CHARTS = {"Alert velocity (hourly)", "Severity distribution", "Top rules by alerts",
                "Rule effectiveness (hit rate)", "Top risky entities",
                "Quarantine rate by pipeline", "Pipeline health (daily)"}
HEALTH_CHARTS = {"Events per second", "Batch duration (ms)", "Kafka lag", "Quarantine reasons",
                 "Live alerts per minute"}
LIVE_CHARTS = {"Latest alerts", "Alerts per minute by severity"}


def chart_id(api: Api, name: str) -> int:
    hits = [c["id"] for c in api.all("chart") if c["slice_name"] == name]
    assert len(hits) == 1, f"{name}: {hits}"
    return int(hits[0])


def chart_rows(api: Api, name: str) -> list[dict]:
    res = api.get(f"/api/v1/chart/{chart_id(api, name)}/data/?format=json&force=true")
    assert len(res["result"]) == 1
    assert not res["result"][0].get("error"), res["result"][0]
    return res["result"][0]["data"]


def test_provisioning_twice_leaves_one_of_everything(provisioned: Provisioned) -> None:
    api = provisioned.api
    first, second = provisioned.runs
    assert first == second  # the second run updated the same objects
    names = Counter(d["database_name"] for d in api.all("database"))
    assert {n: names[n] for n in DATABASES} == dict.fromkeys(DATABASES, 1)
    ds = Counter(d["table_name"] for d in api.all("dataset"))
    assert {n: ds[n] for n in DATASETS} == dict.fromkeys(DATASETS, 1)
    charts = Counter(c["slice_name"] for c in api.all("chart"))
    assert {n: charts[n] for n in FRAUD_CHARTS | HEALTH_CHARTS | LIVE_CHARTS} == \
        dict.fromkeys(FRAUD_CHARTS | HEALTH_CHARTS | LIVE_CHARTS, 1)
    boards = Counter(d["dashboard_title"] for d in api.all("dashboard"))
    assert {n: boards[n] for n in DASHBOARDS} == dict.fromkeys(DASHBOARDS, 1)
    for title, expected in (("Fraud Overview", FRAUD_CHARTS), ("Pipeline Health", HEALTH_CHARTS)):
        board = first["dashboards"][title]
        on_board = api.get(f"/api/v1/dashboard/{board}/charts")["result"]
        assert {c["slice_name"] for c in on_board} == expected
        meta = api.get(f"/api/v1/dashboard/{board}")["result"]
        filters = json.loads(meta["json_metadata"])["native_filter_configuration"]
        assert {f["name"]: f["filterType"] for f in filters} == {
            "Pipeline": "filter_select", "Time range": "filter_time"}
    # the marts are built: no placeholder is left (physical tables in the gold schema)
    for d in api.all("dataset"):
        if d["table_name"] in MARTS and d["id"] in first["datasets"].values():
            full = api.get(f"/api/v1/dataset/{d['id']}")["result"]
            assert full["sql"] in (None, "") and full["schema"].endswith("gold"), full["sql"]
    lake_db = api.get(f"/api/v1/database/{first['databases']['Sentinel Lakehouse']}")["result"]
    assert lake_db["expose_in_sqllab"] is True
    assert lake_db["backend"] == "hive"


def test_live_alerts_lists_the_newest_alerts_and_refreshes_itself(
        provisioned: Provisioned) -> None:
    api = provisioned.api
    board = provisioned.runs[0]["dashboards"]["Live Alerts"]
    on_board = api.get(f"/api/v1/dashboard/{board}/charts")["result"]
    assert {c["slice_name"] for c in on_board} == LIVE_CHARTS
    meta = json.loads(api.get(f"/api/v1/dashboard/{board}")["result"]["json_metadata"])
    assert 0 < meta["refresh_frequency"] <= 10
    filters = {f["name"]: f for f in meta["native_filter_configuration"]}
    assert {n: f["filterType"] for n, f in filters.items()} == {
        "Pipeline": "filter_select", "Severity": "filter_select", "Time range": "filter_time"}
    assert filters["Severity"]["targets"][0]["column"]["name"] == "severity"

    rows = chart_rows(api, "Latest alerts")
    stamps = [r["alert_timestamp"] for r in rows]  # epoch ms
    assert stamps == sorted(stamps, reverse=True)
    with get_engine().connect() as conn:
        total = conn.execute(text("select count(*) from fraud_alerts")).scalar()
        every = conn.execute(text(
            "select a.event_id, p.name, a.severity, a.transaction_data::text, "
            "extract(epoch from a.alert_timestamp) * 1000 "
            "from fraud_alerts a join pipelines p on p.id = a.pipeline_id")).all()
    assert len(rows) == min(total, 200) > 0
    shown = {(r["event_id"], r["pipeline_name"], r["severity"]) for r in rows}
    assert shown <= {(e, n, sev) for e, n, sev, _, _ in every}
    # nothing newer than the oldest row shown is missing (ties at the cut may go either way)
    assert {(e, n, sev) for e, n, sev, _, ms in every if ms > min(stamps) + 1} <= shown
    fields = {e: json.loads(d) for e, _, _, d, _ in every}
    assert all(json.loads(r["event_fields"]) == fields[r["event_id"]] for r in rows)


def test_pipeline_filter_options_come_from_the_data(provisioned: Provisioned) -> None:
    """The Pipeline filter's values are queried from the dataset, not stored in the config."""
    api, lake = provisioned.api, provisioned.lake
    board = provisioned.runs[0]["dashboards"]["Fraud Overview"]
    meta = api.get(f"/api/v1/dashboard/{board}")["result"]
    assert all(p.name not in meta["json_metadata"] for p in lake.pipelines)
    rows = chart_rows(api, "Quarantine rate by pipeline")
    assert {r["pipeline_name"] for r in rows} == {p.name for p in lake.pipelines}


def test_chart_data_equals_the_lake_and_postgres(provisioned: Provisioned) -> None:
    api, lake = provisioned.api, provisioned.lake
    alerts = [a for p in lake.pipelines for a in p.alerts()]

    severity = {r["severity"]: r["alerts"] for r in chart_rows(api, "Severity distribution")}
    assert severity == dict(Counter(a["rule"].severity for a in alerts))

    top = {r["rule"]: r["alerts"] for r in chart_rows(api, "Top rules by alerts")}
    assert top == {f"rule {k}": v for k, v in Counter(a["rule"].id for a in alerts).items()}

    rate = {r["pipeline_name"]: r["quarantine_rate"]
            for r in chart_rows(api, "Quarantine rate by pipeline")}
    assert rate == {p.name: pytest.approx(len(p.bad) / (len(p.good) + len(p.bad)))
                    for p in lake.pipelines}

    velocity: Counter = Counter()
    for r in chart_rows(api, "Alert velocity (hourly)"):
        velocity[(r["alert_hour"], r["severity"])] += r["alerts"]
    expected: Counter = Counter()
    for a in alerts:
        hour = a["event_time"].replace(minute=0, second=0, microsecond=0)
        expected[(int(hour.timestamp() * 1000), a["rule"].severity)] += 1
    assert velocity == expected

    # straight from the mart through the SQL endpoint
    sql = Sql(connect())
    try:
        hit = dict(sql.rows(
            "select concat('rule ', cast(rule_id as string)), "
            "sum(alerted_events) / sum(events_seen) "
            f"from {lake.prefix}gold.fct_rule_effectiveness group by rule_id"))
    finally:
        sql.close()
    got = {r["rule"]: r["hit_rate"] for r in chart_rows(api, "Rule effectiveness (hit rate)")}
    assert got == {k: pytest.approx(float(v)) for k, v in hit.items()}

    # the Postgres database (read-only role) over fraud_alerts, which holds our alerts
    live: Counter = Counter()
    for r in chart_rows(api, "Live alerts per minute"):
        live[r["severity"]] += r["alerts"]
    with get_engine().connect() as conn:
        direct = dict(conn.execute(text(
            "select a.severity, count(*) from fraud_alerts a "
            "join pipelines p on p.id = a.pipeline_id group by a.severity")).all())
    assert live == direct
    ours = Counter(a["severity"] for a in provisioned.alerts)
    assert all(live[k] >= v for k, v in ours.items())


def test_sql_lab_counts_a_bronze_table(provisioned: Provisioned) -> None:
    api, lake = provisioned.api, provisioned.lake
    p = lake.pipelines[0]
    table = next(t for t in desired_tables(load_pipelines(), lake.settings.warehouse_root,
                                           lake.prefix)
                 if t.pipeline.id == p.id and t.kind == "events")
    db = provisioned.runs[0]["databases"]["Sentinel Lakehouse"]
    res = api.post("/api/v1/sqllab/execute/", {
        "database_id": db, "sql": f"select count(*) as n from {table.qualified}",
        "client_id": uuid.uuid4().hex[:10], "runAsync": False, "schema": None,
        "tab": "it", "queryLimit": 1000, "expand_data": True,
        "select_as_cta": False, "ctas_method": "TABLE", "templateParams": "{}"})
    assert res["status"] == "success", res
    sql = Sql(connect())
    try:
        direct = sql.rows(f"select count(*) from {table.qualified}")[0][0]
    finally:
        sql.close()
    assert res["data"] == [{"n": direct}]
    assert direct == len(p.good)
