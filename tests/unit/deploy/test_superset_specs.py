"""Superset as code without a server: placeholders, Live Alerts charts, layout and metadata."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SUPERSET_DIR = Path(__file__).resolve().parents[3] / "deploy" / "superset"
sys.path.insert(0, str(SUPERSET_DIR))
import chart_specs  # noqa: E402
import dashboard_layout  # noqa: E402
import provision  # noqa: E402

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SQL_WORDS = {"SUM", "AVG", "MAX", "COUNT", "concat", "cast", "as", "string", "rule"}


def _columns_read(spec: chart_specs.ChartSpec) -> set[str]:
    cols = {spec.time_col, *spec.groupby, *spec.columns}
    exprs = [m["sqlExpression"] for m in spec.metrics]
    if isinstance(spec.x, str):
        cols.add(spec.x)
    elif isinstance(spec.x, dict):
        exprs.append(spec.x["sqlExpression"])
    for e in exprs:
        cols |= {w for w in IDENT.findall(e.replace("'rule '", "")) if w not in SQL_WORDS}
    return cols


def test_every_mart_placeholder_has_the_columns_its_charts_and_filters_read():
    """A chart on a placeholder must run before dbt built the mart (else it shows an error)."""
    assert set(provision.PLACEHOLDER_COLUMNS) == set(provision.MARTS)
    for spec in chart_specs.CHARTS:
        if spec.dataset in provision.MARTS:
            have = set(provision.PLACEHOLDER_COLUMNS[spec.dataset])
            assert _columns_read(spec) <= have, (spec.name, _columns_read(spec) - have)
            assert "pipeline_name" in have  # the Pipeline filter's column


def test_placeholder_sql_is_an_empty_typed_select_without_a_table():
    sql = provision.placeholder_sql("fct_alerts_hourly")
    assert sql.startswith("select cast(null as timestamp) as alert_hour, ")
    assert sql.endswith(" where 1 = 0") and " from " not in sql


def test_live_alerts_dataset_and_charts():
    sql, time_col = provision.PG_DATASETS["live_alerts"]
    table = next(c for c in chart_specs.CHARTS if c.name == "Latest alerts")
    for col in table.columns:  # every column the table shows is selected by the dataset
        assert re.search(rf"\b{col}\b", sql), col
    assert {"alert_timestamp", "pipeline_name", "rule", "severity", "event_id",
            "event_fields"} <= set(table.columns)
    form = table.form_data(5)
    assert form["viz_type"] == "table" and form["query_mode"] == "raw"
    query = table.query_context(5)["queries"][0]
    assert query["orderby"] == [["alert_timestamp", False]] and query["metrics"] == []
    per_minute = next(c for c in chart_specs.CHARTS if c.name == "Alerts per minute by severity")
    assert per_minute.groupby == ["severity"] and per_minute.time_grain == "PT1M"
    assert per_minute.query_context(5)["queries"][0]["filters"][0]["val"] == chart_specs.LAST_HOUR


def test_live_alerts_refreshes_itself_and_filters_by_pipeline_and_severity():
    specs = [c for c in chart_specs.CHARTS if c.board == chart_specs.LIVE_ALERTS]
    ids = [11, 12]
    layout = dashboard_layout.position_json(chart_specs.LIVE_ALERTS, specs, ids)
    meta = dashboard_layout.dashboard_metadata(chart_specs.LIVE_ALERTS, ids, 7, layout)
    assert 0 < meta["refresh_frequency"] <= 10
    selects = {f["name"]: f["targets"][0]["column"]["name"]
               for f in meta["native_filter_configuration"] if f["filterType"] == "filter_select"}
    assert selects == {"Pipeline": "pipeline_name", "Severity": "severity"}
    assert len({f["id"] for f in meta["native_filter_configuration"]}) == 3
    json.dumps(meta)  # Superset stores it as JSON


def test_other_dashboards_keep_two_charts_per_row_and_no_refresh():
    specs = [c for c in chart_specs.CHARTS if c.board == chart_specs.FRAUD_OVERVIEW]
    ids = list(range(100, 100 + len(specs)))
    layout = dashboard_layout.position_json(chart_specs.FRAUD_OVERVIEW, specs, ids)
    rows = layout["GRID_ID"]["children"]
    assert [len(layout[r]["children"]) for r in rows] == [2, 2, 2, 1]
    assert all(layout[f"CHART-{i}"]["meta"]["width"] == 6 for i in ids)
    meta = dashboard_layout.dashboard_metadata(chart_specs.FRAUD_OVERVIEW, ids, 3, layout)
    assert meta["refresh_frequency"] == 0
    assert [f["name"] for f in meta["native_filter_configuration"]] == ["Pipeline", "Time range"]
