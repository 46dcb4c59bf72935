"""The compiled velocity steps (``jvm/velocity``) compute exactly what the Python reference
(``streaming.velocity_state``) computes: every evaluation, re-evaluation and too-late event,
on generated streams cut into random micro-batches, with each log stored and read back in its
own form between batches. The JVM side runs the test driver ``Replay`` (``jvm/velocity/src/
test``) in a plain ``java`` process: no Spark."""

from __future__ import annotations

import json
import random
import subprocess
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pyspark
import pytest

from streaming.jvm import java_executable
from streaming.rules import Rule
from streaming.schema import fields_of
from streaming.velocity_jar import SOURCES, javac
from streaming.velocity_processors import KEYLESS, KeyProcessor
from streaming.velocity_rules import KAFKA_TS, Compiled, compile_rules
from streaming.velocity_state import MICROS, Entry, KeyLog, Lateness
from tests.velocity_oracle import OracleEvent
from tests.velocity_streams import LATENESS_SECONDS, RULES, SCHEMA, generate

pytestmark = pytest.mark.unit

TEST_SOURCES = SOURCES.parents[1] / "test" / "java"
PYSPARK_JARS = str(Path(pyspark.__file__).parent / "jars" / "*")


@pytest.fixture(scope="module")
def replay_classes(tmp_path_factory) -> str:
    """The main and test sources compiled (the classpath of the driver)."""
    compiler = javac()
    assert compiler is not None, "the compiled velocity steps need a JDK (javac)"
    out = tmp_path_factory.mktemp("velocity-classes")
    sources = [str(p) for p in [*SOURCES.rglob("*.java"), *TEST_SOURCES.rglob("*.java")]]
    subprocess.run([compiler, "-nowarn", "-Xlint:-path", "-cp", PYSPARK_JARS, "-d", str(out),
                    *sources], check=True, capture_output=True, text=True)
    return f"{out}:{PYSPARK_JARS}"


def _compiled() -> Compiled:
    rules = [Rule(c.id, c.expression, "info", None, None, 1) for c in RULES]
    compiled = compile_rules(rules, SCHEMA, fields_of(SCHEMA))
    assert not compiled.errors and compiled.lateness_field == "ts"
    return compiled


def _micros(v: Any) -> Any:
    return int(v.timestamp() * MICROS) if isinstance(v, datetime) else v


def _batches(events: list[OracleEvent], seed: int, most: int = 30
             ) -> list[list[OracleEvent]]:
    rng, out, i = random.Random(seed), [], 0
    while i < len(events):
        out.append(events[i:i + rng.randint(1, most)])
        i += len(out[-1])
    return out


def _values(ev: OracleEvent, fields: list[str]) -> list[Any]:
    """The kept fields (times in micros) and the record's Kafka time (made up per offset)."""
    return [ev.offset * 1000 + ev.partition if f == KAFKA_TS else _micros(ev.fields.get(f))
            for f in fields]


def jvm_replay(classpath: str, compiled: Compiled, batches: list[list[OracleEvent]],
               stored: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The driver's evaluations; ``stored`` receives how it stored the logs (chunks appended,
    lists rewritten, the most chunks one list held)."""
    fields = [*compiled.kept, KAFKA_TS]
    config = {"fields": fields, "time_fields": [*compiled.time_fields, KAFKA_TS],
              "kafka_ts": KAFKA_TS, "idle_ms": 60_000,
              "terms": {kf: [{"column": t.column, "function": t.function,
                              "argument": t.argument, "distinct": t.distinct,
                              "order_by": t.order_by, "window": t.window} for t in terms]
                        for kf, terms in compiled.terms.items()}}
    lines = [json.dumps({"config": config, "lateness_us": LATENESS_SECONDS * MICROS,
                         "time_field": compiled.lateness_field})]
    for batch in batches:
        lines.append(json.dumps([
            {"p": e.partition, "o": e.offset, "eid": e.event_id,
             "t": _micros(e.fields["ts"]), "vals": _values(e, fields),
             "keys": {kf: e.fields.get(kf) for kf in compiled.key_fields}} for e in batch]))
    java = java_executable()
    assert java is not None
    done = subprocess.run([str(java), "-cp", classpath, "io.sentinel.velocity.Replay"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          check=True, timeout=120)
    if stored is not None:
        stored.update(json.loads(done.stderr.strip().splitlines()[-1]))
    return [json.loads(line) for line in done.stdout.splitlines()]


def python_replay(compiled: Compiled, batches: list[list[OracleEvent]]
                  ) -> list[dict[str, Any]]:
    """What ``velocity_processors`` do with the same batches (the reference)."""
    fields = [*compiled.kept, KAFKA_TS]
    doc = KeyProcessor(compiled.terms, [*compiled.time_fields, KAFKA_TS], 60_000)._doc
    state = Lateness(LATENESS_SECONDS * MICROS)
    stored: dict[tuple[str, str], str] = {}
    out: list[dict[str, Any]] = []
    for b, batch in enumerate(batches):
        groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
        for ev in sorted(batch, key=lambda e: (e.partition, e.offset)):
            if state.decide(ev.partition, _micros(ev.fields["ts"])):
                out.append({"batch": b, "kind": "late", "p": ev.partition, "o": ev.offset})
                continue
            values = {f: v for f, v in zip(fields, _values(ev, fields), strict=True)
                      if v is not None}  # as to_json writes them: no NULLs
            entry = Entry(ev.partition, ev.offset, ev.event_id, values)
            for kf in compiled.key_fields:
                key = ev.fields.get(kf)
                groups[(kf, KEYLESS + ev.event_id if key is None else str(key))].append(entry)
        for (kf, key), arrivals in groups.items():
            arrivals.sort(key=lambda e: (e.values.get("ts") is not None, e.values.get("ts") or 0,
                                         e.partition, e.offset))
            log = KeyLog.loads(stored.get((kf, key)), keyless=key.startswith(KEYLESS))
            terms = compiled.terms[kf]
            for ev in log.arrive(terms, arrivals):
                row = {"batch": b, "kind": "eval", "kf": kf, "reeval": ev.reevaluated,
                       "seq": ev.sequence, "p": ev.entry.partition, "o": ev.entry.offset,
                       "eid": ev.entry.event_id,
                       "vals": {k: None if v is None else float(v) for k, v in ev.values.items()}}
                if ev.reevaluated:
                    row["doc"] = doc(ev.entry)
                out.append(row)
            log.prune(terms, state.horizon)
            stored[(kf, key)] = log.dumps()
    return out


def _canonical(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as sorted JSON texts; a NULL field of a doc is the same as an absent one (the
    condition reads it with from_json)."""
    for row in rows:
        if "doc" in row:
            row["doc"] = {k: v for k, v in json.loads(row["doc"]).items() if v is not None}
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


@pytest.mark.parametrize("seed", [3, 17, 29])
def test_jvm_steps_equal_the_python_reference(replay_classes, seed):
    compiled = _compiled()
    batches = _batches(generate(seed, 220, prefix=f"j{seed}"), seed)
    want = python_replay(compiled, batches)
    got = jvm_replay(replay_classes, compiled, batches)
    assert any(r["kind"] == "late" for r in want), "the stream must have too-late events"
    assert any(r.get("reeval") for r in want), "and re-evaluations"
    assert _canonical(got) == _canonical(want)


def test_jvm_steps_equal_the_python_reference_over_many_small_batches(replay_classes):
    """Batches of 1 to 3 events: the stored lists grow chunk by chunk and are rewritten (half
    stale, or too many chunks), and the evaluations stay the reference's."""
    compiled = _compiled()
    batches = _batches(generate(41, 400, prefix="j41"), 41, most=3)
    stored: dict[str, int] = {}
    got = jvm_replay(replay_classes, compiled, batches, stored)
    assert _canonical(got) == _canonical(python_replay(compiled, batches))
    assert stored["appends"] > 0 and stored["rewrites"] > 0, stored
    assert stored["longest"] <= 16, stored
