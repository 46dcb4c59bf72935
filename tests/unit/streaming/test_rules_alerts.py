"""One-pass rule evaluation, rule analysis and deterministic alert ids."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from streaming.alerts import alert_id, to_alerts
from streaming.parse import parse_kafka, valid_events
from streaming.rules import Rule, analyse, analyse_all, evaluate
from streaming.schema import fields_of

pytestmark = pytest.mark.unit

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "currency", "type": "string", "nullable": True},
    {"name": "qty", "type": "integer", "nullable": True},
]
FIELDS = fields_of(SCHEMA)
EVENTS = [
    {"transaction_id": "a", "amount": 9000.0, "currency": "XX", "qty": 1},
    {"transaction_id": "b", "amount": 10.0, "currency": "USD", "qty": 0},
    {"transaction_id": "c", "amount": 6000.0, "currency": None, "qty": 3},
    {"transaction_id": "d", "amount": 1.0, "currency": "XX", "qty": None},
]
RULES = [
    (Rule(1, "amount > 5000", "critical", 90.0, "big", 2), lambda e: e["amount"] > 5000),
    (Rule(2, "currency IN ('XX', 'YY')", "warning", None, None, 1),
     lambda e: e["currency"] in ("XX", "YY")),
    (Rule(3, "currency IS NULL", "info", 5.0, "no currency", 1),
     lambda e: e["currency"] is None),
    (Rule(4, "amount / qty > 100", "warning", 1.0, "per unit", 1),  # qty=0 → NULL, no match
     lambda e: e["qty"] not in (None, 0) and e["amount"] / e["qty"] > 100),
    (Rule(5, "CASE WHEN qty IS NULL THEN true ELSE false END", "info", 0.0, None, 3),
     lambda e: e["qty"] is None),
]


@pytest.fixture()
def events(kafka_df):
    parsed = parse_kafka(kafka_df([json.dumps(e).encode() for e in EVENTS]), FIELDS,
                         key_field="transaction_id", schema_version=1)
    return valid_events(parsed, FIELDS).cache()


def test_one_pass_matches_python(events):
    rules = [r for r, _ in RULES]
    got = {(r["_event_id"], r["_rule_id"]) for r in evaluate(events, rules).collect()}
    want = {(e["transaction_id"], r.id) for r, pred in RULES for e in EVENTS if pred(e)}
    assert got == want


def test_evaluate_is_a_single_projection(events):
    plan = evaluate(events, [r for r, _ in RULES])._jdf.queryExecution().optimizedPlan()
    text = plan.toString()
    assert "array_except" in text
    assert text.count("Generate") == 1  # one explode, no union of per-rule filters
    assert "Union" not in text


def test_rules_are_code_generated_and_evaluated_once(events):
    """No lambda function (it has no generated code) and no inferred ``size(...) > 0``
    filter (it would evaluate every rule a second time) in the executed plan."""
    executed = evaluate(events, [r for r, _ in RULES])._jdf.queryExecution().executedPlan()
    text = executed.toString()
    assert "lambdafunction" not in text.lower()
    assert "size(" not in text.lower()
    assert "*(" in text  # whole-stage code generation around the rules


def test_rule_metadata_is_joined(events):
    rows = evaluate(events, [RULES[0][0]]).collect()
    assert {(r["severity"], r["score"], r["rule_description"], r["rule_version"]) for r in rows} \
        == {("critical", 90.0, "big", 2)}


def test_no_rules_gives_no_matches(events):
    assert evaluate(events, []).count() == 0


@pytest.mark.parametrize(
    "expression, fragment",
    [
        ("amount >>> 5", "boolean"),
        ("amount >", "syntax"),
        ("missing_col > 1", "missing_col"),
        ("amount + 1", "boolean"),
        ("upper(currency)", "boolean"),
    ],
)
def test_analysis_rejects_bad_rules(events, expression, fragment):
    error = analyse(events, Rule(9, expression, "info", None, None, 1))
    assert error is not None and fragment.lower() in error.lower()


def test_analysis_accepts_good_rules(events):
    for rule, _ in RULES:
        assert analyse(events, rule) is None


def test_joint_analysis_names_exactly_the_bad_rules(events):
    good = [r for r, _ in RULES]
    bad = [Rule(90, "amount >", "info", None, None, 1),
           Rule(91, "amount + 1", "info", None, None, 1)]
    assert analyse_all(events, good) == {}
    errors = analyse_all(events, [good[0], bad[0], good[1], bad[1]])
    assert set(errors) == set(bad)
    assert errors[bad[1]] == analyse(events, bad[1])


def test_alert_ids_match_python_and_rows(events):
    matches = evaluate(events, [r for r, _ in RULES])
    alerts = to_alerts(matches, FIELDS, 42, F.current_timestamp()).collect()
    assert alerts, "expected some alerts"
    for a in alerts:
        assert a["alert_id"] == alert_id(42, a["rule_id"], a["rule_version"], a["event_id"])
        data = json.loads(a["transaction_data"])
        assert data["transaction_id"] == a["event_id"]
        assert a["pipeline_id"] == 42 and a["kafka_partition"] == 0
    assert len({a["alert_id"] for a in alerts}) == len(alerts)


def test_alert_id_changes_with_rule_version():
    assert alert_id(1, 2, 1, "e") != alert_id(1, 2, 2, "e")
    assert alert_id(1, 2, 1, "e") == alert_id(1, 2, 1, "e")


def test_rule_cache_analyses_only_what_a_change_brought(events, monkeypatch):
    """A reload analyses and records only new or edited rules; a rejected rule stays off."""
    import streaming.rules as rules_mod

    good, bad = RULES[0][0], Rule(7, "missing_col > 1", "info", None, None, 1)
    added, edited = RULES[1][0], Rule(1, "amount > 6000", "critical", 90.0, "big", 3)
    catalog = {"version": 1, "rules": [good, bad]}
    analysed: list[list[int]] = []
    recorded: list[tuple[list[int], list[int]]] = []
    real_analyse_all = rules_mod.analyse_all
    monkeypatch.setattr(rules_mod, "rules_version", lambda pid: catalog["version"])
    monkeypatch.setattr(rules_mod, "load_active_rules",
                        lambda pid: (catalog["version"], list(catalog["rules"])))
    monkeypatch.setattr(rules_mod, "analyse_all", lambda df, rs: (
        analysed.append([r.id for r in rs]), real_analyse_all(df, rs))[1])
    monkeypatch.setattr(rules_mod, "record_states", lambda ok, errors: recorded.append(
        ([r.id for r in ok], [r.id for r in errors])))

    cache = rules_mod.RuleCache(pipeline_id=1)
    assert cache.refresh(events) == [good]
    assert set(cache.errors) == {7} and recorded[-1] == ([1], [7])

    catalog.update(version=2, rules=[good, added, bad])
    assert cache.refresh(events) == [good, added]
    assert analysed[-1] == [2] and recorded[-1] == ([2], [])

    assert cache.reject({added: "over budget"}) == [good]
    catalog.update(version=3, rules=[edited, added, bad])
    assert cache.refresh(events) == [edited]
    assert analysed[-1] == [1] and set(cache.errors) == {2, 7}

    calls = len(analysed)
    assert cache.refresh(events) == [edited]  # nothing moved: no analysis, no catalog write
    assert len(analysed) == calls


def test_rule_cache_leaves_velocity_rules_to_the_velocity_path(events, monkeypatch):
    """A velocity rule (window term) is never analysed, run or recorded by the stateless path."""
    import streaming.rules as rules_mod

    good = RULES[0][0]
    velocity = Rule(8, "COUNT(*) OVER (PARTITION BY currency ORDER BY ts RANGE BETWEEN "
                    "INTERVAL '5' MINUTES PRECEDING AND CURRENT ROW) >= 3", "info", None, None, 1)
    analysed: list[list[int]] = []
    recorded: list[tuple[list[int], list[int]]] = []
    real_analyse_all = rules_mod.analyse_all
    monkeypatch.setattr(rules_mod, "rules_version", lambda pid: 1)
    monkeypatch.setattr(rules_mod, "load_active_rules", lambda pid: (1, [good, velocity]))
    monkeypatch.setattr(rules_mod, "analyse_all", lambda df, rs: (
        analysed.append([r.id for r in rs]), real_analyse_all(df, rs))[1])
    monkeypatch.setattr(rules_mod, "record_states", lambda ok, errors: recorded.append(
        ([r.id for r in ok], [r.id for r in errors])))

    cache = rules_mod.RuleCache(pipeline_id=1)
    assert cache.refresh(events) == [good]
    assert analysed == [[1]] and recorded == [([1], [])] and cache.errors == {}
