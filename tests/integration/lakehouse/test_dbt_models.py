"""The dbt build of lakehouse_models over the endpoint: every mart equals plain-Python totals."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from orchestration.lake.registration import Sql, connect
from tests.integration.lakehouse.conftest import DagsterBuild, Lake
from tests.integration.lakehouse.lake_data import RANK

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def built(lake: Lake, dagster_build: DagsterBuild):
    """The marts as built by ``dagster asset materialize`` of the dbt assets (conftest: one
    build for this module and test_stream_to_marts.py, over this data plus a streamed
    pipeline); yields (the build, SQL session)."""
    sql = Sql(connect())
    yield dagster_build, sql
    sql.close()


def ours(lake: Lake) -> str:
    return ", ".join(str(p.id) for p in lake.pipelines)


def rows(built, sql_text: str) -> list[tuple]:
    return built[1].rows(sql_text)


def test_build_runs_every_model_and_test(built) -> None:
    build = built[0]
    assert len([k for k in build.materialized if k.split("/")[0] in ("staging", "gold")]) == 9
    assert len(build.checks) >= 20
    assert all(build.checks.values()), [k for k, ok in build.checks.items() if not ok]


def test_alerts_hourly_and_daily_equal_python_counts(lake: Lake, built) -> None:
    gold = f"{lake.prefix}gold"
    hourly: Counter = Counter()
    daily: Counter = Counter()
    for p in lake.pipelines:
        for a in p.alerts():
            r, t = a["rule"], a["event_time"]
            hourly[(p.id, r.id, r.severity, t.strftime("%Y-%m-%d %H:00"))] += 1
            daily[(p.id, r.id, r.severity, t.strftime("%Y-%m-%d"))] += 1
    got_h = rows(built, "select pipeline_id, rule_id, severity, "
                        "date_format(alert_hour, 'yyyy-MM-dd HH:mm'), alerts "
                        f"from {gold}.fct_alerts_hourly where pipeline_id in ({ours(lake)})")
    assert {r[:4]: r[4] for r in got_h} == dict(hourly)
    got_d = rows(built, "select pipeline_id, rule_id, severity, cast(alert_date as string), "
                        f"alerts from {gold}.fct_alerts_daily where pipeline_id in ({ours(lake)})")
    assert {r[:4]: r[4] for r in got_d} == dict(daily)


def test_rule_effectiveness_equals_python_hit_rates_and_overlap(lake: Lake, built) -> None:
    expected = {}
    for p in lake.pipelines:
        events_per_day: dict[str, set] = defaultdict(set)
        for e in p.good:
            events_per_day[p.event_time(e).strftime("%Y-%m-%d")].add(str(e[p.key]))
        alerts = p.alerts()
        rules_of_event: dict[str, set] = defaultdict(set)
        for a in alerts:
            rules_of_event[a["event_id"]].add(a["rule"].id)
        per: dict = defaultdict(lambda: [0, set(), 0])
        for a in alerts:
            k = (p.id, a["rule"].id, a["event_time"].strftime("%Y-%m-%d"))
            per[k][0] += 1
            per[k][1].add(a["event_id"])
            per[k][2] += len(rules_of_event[a["event_id"]]) > 1
        for k, (n, evs, shared) in per.items():
            seen = len(events_per_day[k[2]])
            expected[k] = (seen, n, round(len(evs) / seen, 6), shared)
    got = rows(built, "select pipeline_id, rule_id, cast(event_date as string), events_seen, "
                      "alerts, round(hit_rate, 6), shared_alerts "
                      f"from {lake.prefix}gold.fct_rule_effectiveness "
                      f"where pipeline_id in ({ours(lake)})")
    assert {r[:3]: (r[3], r[4], float(r[5]), r[6]) for r in got} == expected


def test_entity_risk_equals_python_profiles(lake: Lake, built) -> None:
    expected = {}
    for p in lake.pipelines:
        events = Counter(str(e[p.key]) for e in p.good)
        alerts: dict[str, list] = defaultdict(list)
        for a in p.alerts():
            alerts[a["event_id"]].append(a["rule"].severity)
        for key, n in events.items():
            worst = max(alerts[key], key=RANK.__getitem__) if alerts[key] else None
            times = [p.event_time(e) for e in p.good if str(e[p.key]) == key]
            expected[(p.id, key)] = (n, len(alerts[key]), worst,
                                     min(times).strftime("%Y-%m-%d %H:%M"),
                                     max(times).strftime("%Y-%m-%d %H:%M"))
    got = rows(built, "select pipeline_id, key_value, events, alerts, max_severity, "
                      "date_format(first_seen_at, 'yyyy-MM-dd HH:mm'), "
                      "date_format(last_seen_at, 'yyyy-MM-dd HH:mm') "
                      f"from {lake.prefix}gold.dim_entity_risk "
                      f"where pipeline_id in ({ours(lake)})")
    assert {r[:2]: tuple(r[2:]) for r in got} == expected


def test_pipeline_health_and_quarantine_reasons_equal_python(lake: Lake, built) -> None:
    gold = f"{lake.prefix}gold"
    today = lake.ingested.isoformat()
    for p in lake.pipelines:
        days: dict[str, list] = defaultdict(lambda: [0, 0, 0])
        for e in p.good:
            days[p.event_time(e).strftime("%Y-%m-%d")][0] += 1
        for a in p.alerts():
            days[a["event_time"].strftime("%Y-%m-%d")][2] += 1
        days[today][1] += len(p.bad)
        got = rows(built, "select cast(activity_date as string), events, quarantined, alerts, "
                          f"round(quarantine_rate, 6) from {gold}.fct_pipeline_health_daily "
                          f"where pipeline_id = {p.id}")
        assert {r[0]: list(r[1:4]) for r in got} == dict(days)
        rate = {r[0]: float(r[4]) for r in got}[today]
        ev, q = days[today][0], days[today][1]
        assert rate == pytest.approx(q / (ev + q), abs=1e-6)

        reasons = rows(built, "select reason_category, sum(quarantined), sum(share_of_day) "
                              f"from {gold}.fct_quarantine_reasons where pipeline_id = {p.id} "
                              "group by reason_category")
        assert {r[0]: r[1] for r in reasons} == dict(Counter(c for _, c in p.bad))
        assert sum(float(r[2]) for r in reasons) == pytest.approx(1.0)
