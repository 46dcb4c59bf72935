"""Provisions Superset as code through its REST API: databases, datasets, charts, dashboards.

    .venv-superset/bin/python deploy/superset/provision.py [--url http://127.0.0.1:8088]

Idempotent: every object is looked up by its name (database name, dataset name, chart name,
dashboard title) and updated in place, or created when missing; running it twice leaves exactly
one of each. What it points at comes from the same variables as the rest of the stack:

- "Sentinel Lakehouse": hive://<SENTINEL_THRIFT_HOST>:<SENTINEL_THRIFT_PORT> (the Spark Thrift
  Server), SQL Lab enabled; datasets on the dbt marts in <SENTINEL_LAKEHOUSE_SCHEMA_PREFIX>gold.
  A mart dbt has not built yet gets a placeholder instead: the same dataset as an empty query
  with the columns the charts use, so every chart exists from the first start and shows "no
  data"; the provisioning after a build (Dagster's ``superset_dashboards`` asset) turns it into
  the physical table;
- "Sentinel Alerts": the catalog database of SENTINEL_DATABASE_URL (host, port, name) as the
  read-only role superset_reader (password in $SENTINEL_HOME/superset-reader-password);
  datasets over fraud_alerts and stream_runs, joined to pipelines for the pipeline name;
  dashboard "Live Alerts" (latest alerts with their event, alerts per minute) refreshes itself.

Filters read their values from the data (native filter over `pipeline_name`), so a new
pipeline appears in them without provisioning again. Admin credentials: user admin, password
from $SENTINEL_HOME/superset-admin-password (or SUPERSET_ADMIN_PASSWORD). Secrets are never
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart_specs import CHARTS, LIVE_ALERTS, ChartSpec  # noqa: E402
from dashboard_layout import dashboard_metadata, position_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("SENTINEL_HOME") or ROOT / ".sentinel")
LAKEHOUSE, ALERTS = "Sentinel Lakehouse", "Sentinel Alerts"
FRAUD_OVERVIEW, PIPELINE_HEALTH = "Fraud Overview", "Pipeline Health"


NOT_FOUND = ("could not be found", "TABLE_OR_VIEW_NOT_FOUND", "not found", "does not exist")


class NotFound(RuntimeError):
    """Superset cannot see the table of a dataset (e.g. a dbt mart not built yet)."""


class Superset:
    """A logged-in REST session (JWT + CSRF token + session cookie)."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url, self.http = url.rstrip("/"), requests.Session()
        r = self.http.post(f"{self.url}/api/v1/security/login", timeout=60, json={
            "username": user, "password": password, "provider": "db", "refresh": True})
        if r.status_code != 200:
            raise SystemExit(f"login to {self.url} as {user} failed: HTTP {r.status_code}")
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        csrf = self.call("GET", "/api/v1/security/csrf_token/")["result"]
        self.http.headers.update({"X-CSRFToken": csrf, "Referer": self.url})

    def call(self, method: str, path: str, body: Any = None, ok: tuple = (200, 201)) -> Any:
        r = self.http.request(method, self.url + path, json=body, timeout=300)
        if r.status_code == 422 and any(m in r.text for m in NOT_FOUND):
            raise NotFound(r.text[:300])
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {r.status_code}: {r.text[:800]}")
        return r.json() if r.content else {}

    def find(self, resource: str, **eq: Any) -> list[dict]:
        """Every object of /api/v1/<resource>/ whose fields equal ``eq`` (all pages)."""
        found, page = [], 0
        while True:
            q = f"(page:{page},page_size:100)"
            res = self.call("GET", f"/api/v1/{resource}/?q={quote(q)}")
            rows = res.get("result", [])
            found += [r for r in rows if all(_field(r, k) == v for k, v in eq.items())]
            if len(rows) < 100:
                return found
            page += 1

    def upsert(self, resource: str, match: dict, body: dict) -> int:
        """PUT onto the one object matching ``match``, or POST; duplicates are deleted."""
        hits = sorted(self.find(resource, **match), key=lambda r: r["id"])
        for extra in hits[1:]:
            self.call("DELETE", f"/api/v1/{resource}/{extra['id']}")
        if hits:
            oid = hits[0]["id"]
            self.call("PUT", f"/api/v1/{resource}/{oid}", body)
            return int(oid)
        return int(self.call("POST", f"/api/v1/{resource}/", body)["id"])


def _field(row: dict, key: str) -> Any:
    value = row.get(key)
    if isinstance(value, dict) and "id" in value:  # e.g. dataset.database = {"id": 1, ...}
        return value["id"]
    return value


def read_secret(env: str, name: str) -> str:
    value = os.environ.get(env, "")
    if not value and (HOME / name).is_file():
        value = (HOME / name).read_text().strip()
    if not value:
        raise SystemExit(f"no {HOME / name} (and no {env}): run deploy/local/superset.sh start")
    return value


# ---------------------------------------------------------------- databases


def lakehouse_uri() -> str:
    host = os.environ.get("SENTINEL_THRIFT_HOST", "127.0.0.1")
    port = os.environ.get("SENTINEL_THRIFT_PORT", "10000")
    return f"hive://sentinel@{host}:{port}/default"


def alerts_uri() -> str:
    url = os.environ.get("SENTINEL_DATABASE_URL",
                         "postgresql+psycopg2://sentinel:sentinel@127.0.0.1:5432/sentinel")
    parts = urlsplit(url)
    db = parts.path.lstrip("/") or "sentinel"
    password = quote(read_secret("SUPERSET_READER_PASSWORD", "superset-reader-password"), safe="")
    return (f"postgresql+psycopg2://superset_reader:{password}@{parts.hostname or '127.0.0.1'}:"
            f"{parts.port or 5432}/{db}")


def ensure_databases(api: Superset) -> dict[str, int]:
    common = {"expose_in_sqllab": True, "allow_run_async": False, "allow_ctas": False,
              "allow_cvas": False, "allow_dml": False, "allow_file_upload": False}
    lake_extra = {"engine_params": {"connect_args": {"auth": "NONE"}},
                  "metadata_params": {}, "schemas_allowed_for_file_upload": []}
    return {
        LAKEHOUSE: api.upsert("database", {"database_name": LAKEHOUSE}, {
            **common, "database_name": LAKEHOUSE, "sqlalchemy_uri": lakehouse_uri(),
            "extra": json.dumps(lake_extra)}),
        ALERTS: api.upsert("database", {"database_name": ALERTS}, {
            **common, "database_name": ALERTS, "sqlalchemy_uri": alerts_uri()}),
    }


# ---------------------------------------------------------------- datasets


def gold() -> str:
    return os.environ.get("SENTINEL_LAKEHOUSE_SCHEMA_PREFIX", "").lower() + "gold"


MARTS = {  # dataset (table) -> its time column
    "fct_alerts_hourly": "alert_hour",
    "fct_alerts_daily": "alert_date",
    "fct_rule_effectiveness": "event_date",
    "dim_entity_risk": "last_seen_at",
    "fct_pipeline_health_daily": "activity_date",
    "fct_quarantine_reasons": "quarantine_date",
}
# the placeholder of a mart not built yet: the columns its charts and filters read (Spark types)
PLACEHOLDER_COLUMNS: dict[str, dict[str, str]] = {
    "fct_alerts_hourly": {"alert_hour": "timestamp", "alert_date": "date",
                          "pipeline_name": "string", "rule_id": "int", "severity": "string",
                          "alerts": "bigint"},
    "fct_alerts_daily": {"alert_date": "date", "pipeline_name": "string", "rule_id": "int",
                         "severity": "string", "alerts": "bigint"},
    "fct_rule_effectiveness": {"event_date": "date", "pipeline_name": "string", "rule_id": "int",
                               "events_seen": "bigint", "alerted_events": "bigint"},
    "dim_entity_risk": {"last_seen_at": "timestamp", "pipeline_name": "string",
                        "key_value": "string", "alerts": "bigint"},
    "fct_pipeline_health_daily": {"activity_date": "date", "pipeline_name": "string",
                                  "events": "bigint", "quarantined": "bigint", "alerts": "bigint"},
    "fct_quarantine_reasons": {"quarantine_date": "date", "pipeline_name": "string",
                               "reason_category": "string", "quarantined": "bigint"},
}


def placeholder_sql(mart: str) -> str:
    """An empty result with the mart's chart columns (no table needed)."""
    cols = ", ".join(f"cast(null as {t}) as {c}" for c, t in PLACEHOLDER_COLUMNS[mart].items())
    return f"select {cols} where 1 = 0"


PG_DATASETS = {  # virtual datasets on "Sentinel Alerts": name -> (sql, time column)
    "fraud_alerts_by_pipeline": (
        "select a.id, a.alert_id, a.pipeline_id, p.name as pipeline_name, a.rule_id, "
        "a.rule_version, a.severity, a.score, a.rule_description, a.event_id, a.event_time, "
        "a.alert_timestamp, a.kafka_partition, a.kafka_offset\n"
        "from public.fraud_alerts a join public.pipelines p on p.id = a.pipeline_id",
        "alert_timestamp"),
    "stream_runs_by_pipeline": (
        "select r.id, r.pipeline_id, p.name as pipeline_name, r.dagster_run_id, r.status, "
        "r.started_at, r.updated_at, r.ended_at, r.last_batch_id, r.last_batch_at, "
        "r.input_rows, r.last_batch_rows, r.rows_per_second, r.batch_duration_ms, r.alerts, "
        "r.quarantined, r.kafka_lag, r.restarts\n"
        "from public.stream_runs r join public.pipelines p on p.id = r.pipeline_id",
        "last_batch_at"),
    # the latest alerts with the event that raised them (its fields as compact JSON)
    "live_alerts": (
        "select a.id, a.alert_timestamp, a.event_time, a.pipeline_id, p.name as pipeline_name, "
        "a.rule_id, coalesce(nullif(a.rule_description, ''), 'rule ' || a.rule_id) as rule, "
        "a.severity, a.score, a.event_id, left(a.transaction_data::text, 400) as event_fields\n"
        "from public.fraud_alerts a join public.pipelines p on p.id = a.pipeline_id",
        "alert_timestamp"),
}


def ensure_dataset(api: Superset, db: int, name: str, schema: str, time_col: str,
                   sql: str | None = None) -> int:
    hits = sorted(api.find("dataset", table_name=name, database=db), key=lambda r: r["id"])
    for extra in hits[1:]:
        api.call("DELETE", f"/api/v1/dataset/{extra['id']}")
    if hits:
        did = int(hits[0]["id"])
        api.call("PUT", f"/api/v1/dataset/{did}", {"schema": schema, "sql": sql})
        try:
            api.call("PUT", f"/api/v1/dataset/{did}/refresh")  # columns from the table / query
        except RuntimeError as exc:  # a physical dataset whose table is not there
            if sql is None and "HTTP 422" in str(exc):
                raise NotFound(str(exc)) from exc
            raise
    else:  # creating reads the columns
        did = int(api.call("POST", "/api/v1/dataset/", {
            "database": db, "schema": schema, "table_name": name, "sql": sql})["id"])
    api.call("PUT", f"/api/v1/dataset/{did}", {"main_dttm_col": time_col,
                                               "filter_select_enabled": True})
    return did


def built_marts(api: Superset, db: int) -> set[str] | None:
    """The tables of the gold schema as Superset sees them (None: it could not list them)."""
    try:
        schemas = api.call("GET", f"/api/v1/database/{db}/schemas/?q={quote('(force:!t)')}")
        if gold() not in schemas.get("result", []):
            return set()
        # (not /tables/: through the hive dialect Spark's SHOW TABLES lists the schema's name)
        res = api.call("POST", "/api/v1/sqllab/execute/", {
            "database_id": db, "sql": f"show tables in {gold()}", "runAsync": False,
            "client_id": uuid.uuid4().hex[:10], "schema": None, "tab": "provision",
            "queryLimit": 10000, "expand_data": True, "select_as_cta": False,
            "ctas_method": "TABLE", "templateParams": "{}"})
    except RuntimeError:  # NotFound included
        return None
    return {str(row.get("tableName")) for row in res.get("data", [])}


def ensure_datasets(api: Superset, dbs: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """({dataset: id}, [missing]): a mart dbt has not built yet gets its placeholder."""
    out, missing = {}, []
    built = built_marts(api, dbs[LAKEHOUSE])
    for name, col in MARTS.items():
        try:
            if built is not None and name not in built:
                raise NotFound(name)
            out[name] = ensure_dataset(api, dbs[LAKEHOUSE], name, gold(), col)
        except NotFound:
            missing.append(f"{gold()}.{name}")
            # in `default`: Superset selects the dataset's schema first, and gold may not exist
            out[name] = ensure_dataset(api, dbs[LAKEHOUSE], name, "default", col,
                                       placeholder_sql(name))
    for name, (sql, col) in PG_DATASETS.items():
        out[name] = ensure_dataset(api, dbs[ALERTS], name, "public", col, sql)
    return out, missing


# ---------------------------------------------------------------- charts

def ensure_chart(api: Superset, spec: ChartSpec, dataset_id: int, dashboard_id: int) -> int:
    form, query = spec.form_data(dataset_id), spec.query_context(dataset_id)
    body = {"slice_name": spec.name, "viz_type": spec.viz_type, "datasource_id": dataset_id,
            "datasource_type": "table", "params": json.dumps(form),
            "query_context": json.dumps(query), "query_context_generation": False,
            "description": spec.description, "dashboards": [dashboard_id],
            "cache_timeout": spec.cache_timeout}
    return api.upsert("chart", {"slice_name": spec.name}, body)


# ---------------------------------------------------------------- dashboards

def ensure_dashboard(api: Superset, title: str, slug: str) -> int:
    return api.upsert("dashboard", {"dashboard_title": title},
                      {"dashboard_title": title, "slug": slug, "published": True})


def provision(url: str, user: str, password: str) -> dict[str, Any]:
    api = Superset(url, user, password)
    dbs = ensure_databases(api)
    datasets, missing = ensure_datasets(api, dbs)
    boards = {FRAUD_OVERVIEW: ensure_dashboard(api, FRAUD_OVERVIEW, "fraud-overview"),
              PIPELINE_HEALTH: ensure_dashboard(api, PIPELINE_HEALTH, "pipeline-health"),
              LIVE_ALERTS: ensure_dashboard(api, LIVE_ALERTS, "live-alerts")}
    charts: dict[str, int] = {}
    ready = [spec for spec in CHARTS if spec.dataset in datasets]
    for spec in ready:
        charts[spec.name] = ensure_chart(api, spec, datasets[spec.dataset], boards[spec.board])
    for title, board_id in boards.items():
        specs = [s for s in ready if s.board == title]
        ids = [charts[s.name] for s in specs]
        filter_ds = datasets[specs[0].dataset] if specs else None
        layout = position_json(title, specs, ids)
        api.call("PUT", f"/api/v1/dashboard/{board_id}", {
            "position_json": json.dumps(layout),
            "json_metadata": json.dumps(dashboard_metadata(title, ids, filter_ds, layout)),
        })
    return {"databases": dbs, "datasets": datasets, "dashboards": boards, "charts": charts,
            "missing": missing}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("SUPERSET_URL", "http://127.0.0.1:8088"))
    ap.add_argument("--user", default="admin")
    ap.add_argument("--json", action="store_true", help="print the ids as JSON")
    args = ap.parse_args(argv)
    password = read_secret("SUPERSET_ADMIN_PASSWORD", "superset-admin-password")
    ids = provision(args.url, args.user, password)
    if args.json:
        print(json.dumps(ids))
    else:
        print(f"superset provisioned: {len(ids['databases'])} databases, "
              f"{len(ids['datasets'])} datasets, {len(ids['charts'])} charts, dashboards "
              + ", ".join(f"{t} ({args.url}/superset/dashboard/{i}/)"
                          for t, i in ids["dashboards"].items()))
    if ids["missing"]:
        print("not built yet, placeholders (empty) until the first dbt build, after which "
              "Dagster provisions again: " + ", ".join(ids["missing"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
