"""Pipelines' Delta tables are registered in the SQL endpoint and readable through it."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
from sqlalchemy import update

from catalog.db import get_engine
from catalog.tables import pipelines
from orchestration.lake.registration import Sql, connect, register_all
from orchestration.lake.views import assign_slugs
from tests.integration.lakehouse.conftest import ROOT, Lake

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def sql(lake: Lake):
    s = Sql(connect())
    yield s
    s.close()


def slugs(lake: Lake) -> dict[int, str]:
    return assign_slugs((p.id, p.name) for p in lake.pipelines)


def test_thrift_script_reuses_the_running_endpoint(thrift_endpoint) -> None:
    script = ROOT / "deploy" / "local" / "thrift.sh"
    start = subprocess.run(["bash", str(script), "start"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert start.returncode == 0, start.stderr
    assert "already running" in start.stdout or "reusing" in start.stdout
    status = subprocess.run(["bash", str(script), "status"], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert status.returncode == 0 and " up " in status.stdout, status.stdout


def test_register_all_makes_every_table_queryable(lake: Lake, sql: Sql) -> None:
    report = register_all(settings=lake.settings, sql=sql, force=True)
    pre = lake.prefix
    for p in lake.pipelines:
        s = slugs(lake)[p.id]
        expected = {f"{pre}bronze.{s}_events": len(p.good),
                    f"{pre}bronze.{s}_quarantine": len(p.bad),
                    f"{pre}silver.{s}_alerts": len(p.alerts())}
        for table, count in expected.items():
            schema, name = table.split(".")
            assert f"`{schema}`.`{name}`" in report.registered
            assert sql.rows(f"select count(*) from {table}") == [(count,)], table
    assert report.views_rebuilt


def test_union_views_hold_every_pipeline_in_common_columns(lake: Lake, sql: Sql) -> None:
    register_all(settings=lake.settings, sql=sql)
    pre = lake.prefix
    ours = {p.id: p for p in lake.pipelines}
    ids = ", ".join(str(i) for i in ours)
    counts = dict(sql.rows(f"select pipeline_id, count(*) from {pre}bronze.all_events "
                           f"where pipeline_id in ({ids}) group by pipeline_id"))
    assert counts == {p.id: len(p.good) for p in lake.pipelines}
    alerts = dict(sql.rows(f"select pipeline_id, count(*) from {pre}silver.all_alerts "
                           f"where pipeline_id in ({ids}) group by pipeline_id"))
    assert alerts == {p.id: len(p.alerts()) for p in lake.pipelines}
    quarantined = dict(sql.rows(f"select pipeline_id, count(*) from {pre}bronze.all_quarantine"
                                f" where pipeline_id in ({ids}) group by pipeline_id"))
    assert quarantined == {p.id: len(p.bad) for p in lake.pipelines}

    sensors = lake.pipelines[1]
    rows = sql.rows(f"select event_id, key_value, event_json, pipeline_name, "
                    f"date_format(event_time, \"yyyy-MM-dd'T'HH:mm:ss'Z'\") "
                    f"from {pre}bronze.all_events where pipeline_id = {sensors.id}")
    got = Counter((r[1], json.loads(r[2])["temperature"], r[4]) for r in rows)
    want = Counter((e["sensor_id"], e["temperature"], e["ts"]) for e in sensors.good)
    assert got == want
    assert {r[0] for r in rows} == {e["sensor_id"] for e in sensors.good}
    assert {r[3] for r in rows} == {sensors.name}


def test_sync_is_cheap_when_nothing_changed_and_follows_renames(lake: Lake, sql: Sql) -> None:
    register_all(settings=lake.settings, sql=sql)
    again = register_all(settings=lake.settings, sql=sql)
    assert not again.views_rebuilt and not again.created

    p = lake.pipelines[0]
    old_slug = slugs(lake)[p.id]
    with get_engine().begin() as conn:
        conn.execute(update(pipelines).where(pipelines.c.id == p.id)
                     .values(name=p.name + " renamed"))
    try:
        renamed = register_all(settings=lake.settings, sql=sql)
        assert renamed.views_rebuilt
        assert f"`{lake.prefix}bronze`.`{old_slug}_events`" in renamed.dropped
        new = f"{lake.prefix}bronze.{old_slug}_renamed_events"
        assert sql.rows(f"select count(*) from {new}") == [(len(p.good),)]
        names = sql.rows(f"select distinct pipeline_name from {lake.prefix}silver.all_alerts "
                         f"where pipeline_id = {p.id}")
        assert names == [(p.name + " renamed",)]
    finally:
        with get_engine().begin() as conn:
            conn.execute(update(pipelines).where(pipelines.c.id == p.id).values(name=p.name))
        register_all(settings=lake.settings, sql=sql)


def test_a_pipeline_without_tables_is_pending_and_writes_nothing(lake: Lake, sql: Sql,
                                                                  tmp_path) -> None:
    from catalog.settings import Settings

    empty = Settings(warehouse=str(tmp_path / "nothing-here"))
    report = register_all(settings=empty, sql=sql, force=True)
    ours = [t for t in report.pending if any(slugs(lake)[p.id] in t for p in lake.pipelines)]
    assert len(ours) == 6
    assert not (tmp_path / "nothing-here").exists()  # no empty Delta table was created
    # back to the real warehouse: the views see the data again
    register_all(settings=lake.settings, sql=sql, force=True)
    total = sql.rows(f"select count(*) from {lake.prefix}bronze.all_events "
                     f"where pipeline_id = {lake.pipelines[0].id}")
    assert total == [(len(lake.pipelines[0].good),)]
