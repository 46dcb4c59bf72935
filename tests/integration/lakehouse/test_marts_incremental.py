"""Day partitions of the marts: rebuilding one day rewrites that day only.

A payments pipeline of its own (the conftest's ``incremental``) is in the lake fixture's
warehouse, and the session's ``dagster_build`` built the marts for all its days
(``dagster asset materialize --partition-range``). Then bronze and silver get new events and
alerts of ONE day, ``dagster asset materialize --partition <that day>`` runs in the same
Dagster instance, and: that day's mart rows equal the plain-Python totals of all its events,
another day's rows and files are exactly as before, and each fact table's newest Delta commit
is a dynamic partition overwrite that wrote only that day's rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestration.lake.registration import Sql, connect
from tests.integration.lakehouse.conftest import (
    ROOT,
    DagsterBuild,
    Incremental,
    Lake,
    sql_endpoint_log,
)
from tests.integration.lakehouse.lake_data import (
    BASE,
    LakePipeline,
    payments,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

DAY = (BASE + timedelta(days=1)).date().isoformat()  # gets new rows
OTHER = BASE.date().isoformat()  # must stay as it was
# day-grained facts: (table, date column, grain columns of one pipeline's rows, measures)
FACTS = {
    "fct_alerts_daily": ("alert_date", "rule_id, severity", "alerts"),
    "fct_alerts_hourly": ("alert_date", "rule_id, severity, "
                          "date_format(alert_hour, 'yyyy-MM-dd HH:mm')", "alerts"),
    "fct_rule_effectiveness": ("event_date", "rule_id", "events_seen, alerts"),
    "fct_pipeline_health_daily": ("activity_date", "pipeline_id",
                                  "events, quarantined, alerts"),
}


def materialize(lake: Lake, home: Path, *partition_args: str) -> str:
    """``dagster asset materialize`` of the dbt assets over the lake fixture's warehouse."""
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "SENTINEL_WAREHOUSE": lake.settings.warehouse_root,
           "SENTINEL_LAKEHOUSE_SCHEMA_PREFIX": lake.prefix,
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m",
         "orchestration.definitions", "--select", "group:lakehouse_models", *partition_args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    output = proc.stdout[-3000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, f"{output}\n{sql_endpoint_log()}"
    return output


def append_events(spark: Any, p: LakePipeline, new: list[dict[str, Any]], root: str) -> None:
    """Appends ``new`` events to bronze and their alerts to silver, as a micro-batch does."""
    from pyspark.sql import functions as F

    from streaming.alerts import to_alerts
    from streaming.parse import KAFKA_SCHEMA, parse_kafka, valid_events
    from streaming.pipeline import Paths
    from streaming.rules import Rule, evaluate
    from streaming.schema import fields_of

    offset = len(p.good) + len(p.bad)
    rows = [(None, json.dumps(e).encode(), p.topic, 0, offset + i, BASE + timedelta(days=6), 0)
            for i, e in enumerate(new)]
    fields = fields_of(p.schema)
    parsed = parse_kafka(spark.createDataFrame(rows, KAFKA_SCHEMA), fields, key_field=p.key,
                         schema_version=1)
    paths = Paths(root, f"pipeline_{p.id}")
    events = valid_events(parsed, fields)
    events.write.format("delta").mode("append").partitionBy("event_date").save(paths.events)
    active = [Rule(r.id, r.expression, r.severity, r.score, f"rule {r.id}", 1) for r in p.rules]
    alerts = to_alerts(evaluate(valid_events(parsed, fields), active), fields, p.id,
                       F.lit(BASE + timedelta(days=6)))
    alerts.write.format("delta").mode("append").save(paths.alerts)


def expected(p: LakePipeline, today: str) -> dict[str, dict[tuple, tuple]]:
    """Every fact's rows of ``p`` by (day, grain) -> measures, from the generated events."""
    alerts = p.alerts()
    out: dict[str, dict[tuple, tuple]] = {}
    daily = Counter((a["event_time"].strftime("%Y-%m-%d"), a["rule"].id, a["rule"].severity)
                    for a in alerts)
    out["fct_alerts_daily"] = {k: (n,) for k, n in daily.items()}
    hourly = Counter((a["event_time"].strftime("%Y-%m-%d"), a["rule"].id, a["rule"].severity,
                      a["event_time"].strftime("%Y-%m-%d %H:00")) for a in alerts)
    out["fct_alerts_hourly"] = {k: (n,) for k, n in hourly.items()}
    seen: dict[str, set] = defaultdict(set)
    for e in p.good:
        seen[p.event_time(e).strftime("%Y-%m-%d")].add(str(e[p.key]))
    per_rule = Counter((a["event_time"].strftime("%Y-%m-%d"), a["rule"].id) for a in alerts)
    out["fct_rule_effectiveness"] = {(d, r): (len(seen[d]), n) for (d, r), n in per_rule.items()}
    health: dict[tuple, list] = defaultdict(lambda: [0, 0, 0])
    for e in p.good:
        health[(p.event_time(e).strftime("%Y-%m-%d"), p.id)][0] += 1
    health[(today, p.id)][1] += len(p.bad)
    for a in alerts:
        health[(a["event_time"].strftime("%Y-%m-%d"), p.id)][2] += 1
    out["fct_pipeline_health_daily"] = {k: tuple(v) for k, v in health.items()}
    return out


def snapshot(sql: Sql, gold: str, pid: int) -> dict[str, Any]:
    """Each fact's rows of pipeline ``pid`` (as ``expected``), every row of OTHER (all
    pipelines, all columns) and the data files of each day."""
    snap: dict[str, Any] = {}
    for table, (day_col, grain, measures) in FACTS.items():
        got = sql.rows(f"select cast({day_col} as string), {grain}, {measures} "
                       f"from {gold}.{table} where pipeline_id = {pid}")
        width = len(measures.split(", "))
        snap[table] = {tuple(r[:-width]): tuple(r[-width:]) for r in got}
        snap[f"{table}:other"] = sorted(map(repr, sql.rows(
            f"select * from {gold}.{table} where {day_col} = date '{OTHER}'")))
        files: dict[str, set] = defaultdict(set)
        for day, name in sql.rows(f"select distinct cast({day_col} as string), "
                                  f"input_file_name() from {gold}.{table}"):
            files[day].add(name)
        snap[f"{table}:files"] = files
        snap[f"{table}:day_rows"] = sql.rows(
            f"select count(*) from {gold}.{table} where {day_col} = date '{DAY}'")[0][0]
    return snap


@pytest.fixture(scope="module")
def rebuilt(lake: Lake, incremental: Incremental, dagster_build: DagsterBuild):
    """(the pipeline before, after, snapshot before, snapshot after, last commits, SQL)."""
    before, today = incremental.pipeline, incremental.today
    pid, name = before.id, before.name
    spark = lake.session()
    root = lake.settings.warehouse_root
    assert dagster_build.run_status == "SUCCESS", dagster_build.output  # built every day

    sql = Sql(connect())
    gold = f"{lake.prefix}gold"
    snap_before = snapshot(sql, gold, pid)
    new = [{"transaction_id": f"t{pid}-new{i:03d}", "user_id": None if i % 4 == 0 else i,
            "amount": 950.0 if i % 3 == 0 else 120.0 + i, "currency": "XX" if i % 5 else "EUR",
            "event_time": f"{DAY}T{i % 24:02d}:{(7 * i) % 60:02d}:00Z"} for i in range(36)]
    append_events(spark, before, new, root)
    after = payments(pid, name, pid * 100)
    after.good = before.good + new
    materialize(lake, dagster_build.home, "--partition", DAY)
    snap_after = snapshot(sql, gold, pid)
    commits = {t: sql.rows(f"describe history {gold}.{t} limit 1")[0] for t in FACTS}
    yield before, after, snap_before, snap_after, commits, today
    sql.close()


def test_the_rebuilt_day_equals_the_totals_of_all_its_events(rebuilt) -> None:
    before, after, snap_before, snap_after, _, today = rebuilt
    want_before, want_after = expected(before, today), expected(after, today)
    for table in FACTS:
        assert snap_before[table] == want_before[table], table
        assert snap_after[table] == want_after[table], table
        changed = {k for k in want_after[table] if want_after[table][k]
                   != want_before[table].get(k)}
        assert changed and {k[0] for k in changed} == {DAY}, table  # the new rows are all DAY's


def test_other_days_keep_their_rows_and_files(rebuilt) -> None:
    _, _, snap_before, snap_after, _, _ = rebuilt
    for table in FACTS:
        assert snap_after[f"{table}:other"] == snap_before[f"{table}:other"] != [], table
        old, new = snap_before[f"{table}:files"], snap_after[f"{table}:files"]
        assert set(old) == set(new), table
        for day in old:
            if day == DAY:  # rewritten: none of its files is left
                assert not old[day] & new[day], table
            else:
                assert old[day] == new[day], (table, day)


def test_the_last_commit_is_a_partition_overwrite_of_that_day(rebuilt) -> None:
    _, _, _, snap_after, commits, _ = rebuilt
    for table, commit in commits.items():
        operation, params, metrics = commit[4], json.loads(commit[5]), json.loads(commit[-3])
        assert operation == "WRITE", (table, commit)
        assert params["mode"] == "Overwrite" and params["isDynamicPartitionOverwrite"] == "true"
        assert int(metrics["numOutputRows"]) == snap_after[f"{table}:day_rows"] > 0, table
        assert int(metrics["numRemovedFiles"]) == len(rebuilt[2][f"{table}:files"][DAY]), table
