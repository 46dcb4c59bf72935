"""The charts of the dashboards, as data: what each shows and the form data Superset needs.

Four kinds: ``line`` (time series over a temporal x axis), ``bar`` (top N of a category, sorted
by the metric) and ``pie``, all ECharts (rendered on a canvas), and ``table`` (raw rows, newest
first: the latest alerts of "Live Alerts"). Each chart carries both the
form data the UI renders from (``params``) and a saved query context, which the chart-data API
(``/api/v1/chart/<id>/data/``) answers from: the rows in long form, without post-processing.
Every chart filters on its dataset's time column with ``TEMPORAL_RANGE`` (``time_range``, no
filter by default) so the dashboards' time-range filter applies to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FRAUD_OVERVIEW, PIPELINE_HEALTH = "Fraud Overview", "Pipeline Health"
LIVE_ALERTS = "Live Alerts"
LAST_HOUR = "DATEADD(DATETIME(\"now\"), -1, hour) : now"


def sql_metric(expression: str, label: str) -> dict[str, Any]:
    return {"expressionType": "SQL", "sqlExpression": expression, "label": label,
            "hasCustomLabel": True, "optionName": f"metric_{label}"}


def sql_column(expression: str, label: str) -> dict[str, Any]:
    return {"expressionType": "SQL", "sqlExpression": expression, "label": label}


@dataclass(frozen=True)
class ChartSpec:
    name: str
    board: str
    dataset: str
    kind: str  # line | bar | pie | table
    time_col: str
    metrics: list[dict[str, Any]]
    x: str | dict[str, Any] | None = None  # line: temporal column; bar: the category
    groupby: list[str] = field(default_factory=list)
    time_grain: str | None = None
    row_limit: int = 10000
    description: str = ""
    columns: list[str] = field(default_factory=list)  # table: the columns shown, in order
    time_range: str = "No filter"
    width: int = 6  # of the dashboard grid's 12 columns
    height: int = 50
    cache_timeout: int | None = None  # seconds; None = the dataset's / Superset's default

    @property
    def viz_type(self) -> str:
        return {"line": "echarts_timeseries_line", "bar": "echarts_timeseries_bar",
                "pie": "pie", "table": "table"}[self.kind]

    def time_filter(self) -> dict[str, Any]:
        return {"expressionType": "SIMPLE", "subject": self.time_col,
                "operator": "TEMPORAL_RANGE", "comparator": self.time_range, "clause": "WHERE",
                "sqlExpression": None, "isExtra": False, "isNew": False}

    def form_data(self, dataset_id: int) -> dict[str, Any]:
        base: dict[str, Any] = {
            "datasource": f"{dataset_id}__table", "viz_type": self.viz_type,
            "adhoc_filters": [self.time_filter()], "row_limit": self.row_limit,
            "color_scheme": "supersetColors", "show_legend": True,
            "extra_form_data": {}, "dashboards": [],
        }
        if self.kind == "table":
            return {**base, "query_mode": "raw", "all_columns": self.columns,
                    "order_by_cols": [f'["{self.time_col}", false]'], "include_search": True,
                    "server_pagination": False, "table_timestamp_format": "%Y-%m-%d %H:%M:%S",
                    "page_length": 0, "show_cell_bars": False}
        if self.kind == "pie":
            return {**base, "groupby": self.groupby, "metric": self.metrics[0],
                    "sort_by_metric": True, "donut": True, "show_labels": True,
                    "label_type": "key_percent", "labels_outside": True,
                    "legendOrientation": "right", "legendType": "scroll"}
        common = {**base, "x_axis": self.x, "metrics": self.metrics, "groupby": self.groupby,
                  "order_desc": True, "truncate_metric": True, "rich_tooltip": True,
                  "tooltipTimeFormat": "smart_date", "y_axis_format": "SMART_NUMBER",
                  "legendOrientation": "top", "legendType": "scroll",
                  "comparison_type": "values", "annotation_layers": [],
                  "forecastPeriods": 10, "forecastInterval": 0.8}
        if self.kind == "line":
            return {**common, "time_grain_sqla": self.time_grain, "markerEnabled": True,
                    "markerSize": 4, "x_axis_time_format": "smart_date", "seriesType": "line"}
        metric_label = self.metrics[0]["label"]
        return {**common, "orientation": "horizontal", "x_axis_sort": metric_label,
                "x_axis_sort_asc": False, "x_axis_sort_series": "name",
                "x_axis_sort_series_ascending": True, "show_value": True,
                "timeseries_limit_metric": self.metrics[0], "y_axis_format": (
                    ".1%" if "rate" in metric_label else "SMART_NUMBER")}

    def query_context(self, dataset_id: int) -> dict[str, Any]:
        """What the chart-data API runs: one query, rows in long form, sorted by the metric."""
        columns: list[Any] = []
        orderby: list[Any] = [[self.metrics[0], False]] if self.metrics else []
        if self.kind == "table":
            columns, orderby = list(self.columns), [[self.time_col, False]]
        elif self.kind == "line":
            columns.append({"timeGrain": self.time_grain, "columnType": "BASE_AXIS",
                            "sqlExpression": self.x, "label": self.x, "expressionType": "SQL"})
        elif self.kind == "bar" and self.x is not None:
            columns.append(self.x)
        columns += self.groupby
        query = {
            "filters": [{"col": self.time_col, "op": "TEMPORAL_RANGE", "val": self.time_range}],
            "extras": {"having": "", "where": ""}, "applied_time_extras": {},
            "columns": columns, "metrics": self.metrics,
            "orderby": orderby, "annotation_layers": [],
            "row_limit": self.row_limit, "series_limit": 0, "order_desc": True,
            "url_params": {}, "custom_params": {}, "custom_form_data": {},
            "time_offsets": [], "post_processing": [],
        }
        return {"datasource": {"id": dataset_id, "type": "table"}, "force": False,
                "queries": [query], "form_data": self.form_data(dataset_id),
                "result_format": "json", "result_type": "full"}


ALERTS = sql_metric("SUM(alerts)", "alerts")
RULE = sql_column("concat('rule ', cast(rule_id as string))", "rule")

CHARTS: list[ChartSpec] = [
    ChartSpec("Alert velocity (hourly)", FRAUD_OVERVIEW, "fct_alerts_hourly", "line",
              "alert_hour", [ALERTS], x="alert_hour", groupby=["severity"], time_grain="PT1H",
              description="Alerts per event hour and severity (gold.fct_alerts_hourly)"),
    ChartSpec("Severity distribution", FRAUD_OVERVIEW, "fct_alerts_daily", "pie",
              "alert_date", [ALERTS], groupby=["severity"],
              description="Share of alerts per severity (gold.fct_alerts_daily)"),
    ChartSpec("Top rules by alerts", FRAUD_OVERVIEW, "fct_alerts_daily", "bar", "alert_date",
              [ALERTS], x=RULE, row_limit=10,
              description="The 10 rules that raised the most alerts (gold.fct_alerts_daily)"),
    ChartSpec("Rule effectiveness (hit rate)", FRAUD_OVERVIEW, "fct_rule_effectiveness", "bar",
              "event_date",
              [sql_metric("SUM(alerted_events) / SUM(events_seen)", "hit_rate")], x=RULE,
              row_limit=10,
              description="Events a rule matched / events seen, over the selected days"),
    ChartSpec("Top risky entities", FRAUD_OVERVIEW, "dim_entity_risk", "bar", "last_seen_at",
              [ALERTS], x="key_value", row_limit=10,
              description="Entities (key field values) with the most alerts (dim_entity_risk)"),
    ChartSpec("Quarantine rate by pipeline", FRAUD_OVERVIEW, "fct_pipeline_health_daily", "bar",
              "activity_date",
              [sql_metric("SUM(quarantined) / (SUM(events) + SUM(quarantined))",
                          "quarantine_rate")], x="pipeline_name", row_limit=50,
              description="Quarantined records / all records received"),
    ChartSpec("Pipeline health (daily)", FRAUD_OVERVIEW, "fct_pipeline_health_daily", "line",
              "activity_date",
              [sql_metric("SUM(events)", "events"), sql_metric("SUM(quarantined)", "quarantined"),
               sql_metric("SUM(alerts)", "alerts")], x="activity_date", time_grain="P1D",
              description="Events, quarantined records and alerts per day"),
    ChartSpec("Events per second", PIPELINE_HEALTH, "stream_runs_by_pipeline", "line",
              "last_batch_at", [sql_metric("AVG(rows_per_second)", "events_per_second")],
              x="last_batch_at", groupby=["pipeline_name"], time_grain="PT1M",
              description="Input rows/s of the streaming runs (stream_runs)"),
    ChartSpec("Batch duration (ms)", PIPELINE_HEALTH, "stream_runs_by_pipeline", "line",
              "last_batch_at", [sql_metric("AVG(batch_duration_ms)", "batch_duration_ms")],
              x="last_batch_at", groupby=["pipeline_name"], time_grain="PT1M",
              description="Duration of the last micro-batch of each run (stream_runs)"),
    ChartSpec("Kafka lag", PIPELINE_HEALTH, "stream_runs_by_pipeline", "line", "last_batch_at",
              [sql_metric("MAX(kafka_lag)", "kafka_lag")], x="last_batch_at",
              groupby=["pipeline_name"], time_grain="PT1M",
              description="Records behind the end of the topic (stream_runs)"),
    ChartSpec("Quarantine reasons", PIPELINE_HEALTH, "fct_quarantine_reasons", "pie",
              "quarantine_date", [sql_metric("SUM(quarantined)", "quarantined")],
              groupby=["reason_category"],
              description="Why records were quarantined (gold.fct_quarantine_reasons)"),
    ChartSpec("Live alerts per minute", PIPELINE_HEALTH, "fraud_alerts_by_pipeline", "line",
              "alert_timestamp", [sql_metric("COUNT(*)", "alerts")], x="alert_timestamp",
              groupby=["severity"], time_grain="PT1M",
              description="Alerts mirrored to Postgres (fraud_alerts), per minute"),
    ChartSpec("Latest alerts", LIVE_ALERTS, "live_alerts", "table", "alert_timestamp", [],
              columns=["alert_timestamp", "pipeline_name", "rule", "severity", "event_id",
                       "event_time", "score", "event_fields"],
              row_limit=200, width=12, height=80, cache_timeout=5,
              description="The newest alerts from Postgres (fraud_alerts), with the fields of "
                          "the event that raised each one"),
    ChartSpec("Alerts per minute by severity", LIVE_ALERTS, "live_alerts", "line",
              "alert_timestamp", [sql_metric("COUNT(*)", "alerts")], x="alert_timestamp",
              groupby=["severity"], time_grain="PT1M", time_range=LAST_HOUR, width=12,
              cache_timeout=5,
              description="Alerts mirrored to Postgres in the last hour, per minute and "
                          "severity"),
]
