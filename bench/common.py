"""What the benchmarks share: throw-away topics and pipelines, percentiles, the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka.admin import KafkaAdminClient, NewTopic
from sqlalchemy import delete, func, insert, select

from catalog.db import get_engine
from catalog.settings import get_settings
from catalog.tables import fraud_alerts, pipelines, rules, stream_runs
from streaming.topics import end_offsets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def create_topic(topic: str, partitions: int = 2) -> None:
    """The broker does not auto-create topics."""
    admin = KafkaAdminClient(bootstrap_servers=get_settings().kafka_bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name=topic, num_partitions=partitions,
                                      replication_factor=1)])
    finally:
        admin.close()


def delete_topics(topics: Sequence[str]) -> None:
    """Delete the benchmark's topics (a long run leaves gigabytes); missing ones are fine."""
    admin = KafkaAdminClient(bootstrap_servers=get_settings().kafka_bootstrap_servers)
    try:
        admin.delete_topics([t for t in topics if t in set(admin.list_topics())])
    finally:
        admin.close()


def make_pipeline(topic: str, schema: Sequence[dict], expressions: Sequence[str],
                  key_field: str) -> int:
    """An active pipeline on ``topic`` with one rule per expression (straight into the catalog)."""
    with get_engine().begin() as conn:
        pid = conn.execute(insert(pipelines).values(
            name=topic, kafka_topic=topic, status="active", key_field=key_field,
            schema=list(schema)).returning(pipelines.c.id)).scalar_one()
        if expressions:
            conn.execute(insert(rules), [
                {"pipeline_id": pid, "rule_expression": expr, "severity": "warning",
                 "score": float(i)} for i, expr in enumerate(expressions)])
    return int(pid)


def drop_pipelines(ids: Sequence[int]) -> None:
    with get_engine().begin() as conn:
        conn.execute(delete(pipelines).where(pipelines.c.id.in_(list(ids))))


def archived_events(pipeline_id: int) -> int:
    """Events the pipeline's archive has committed (its ``stream_runs`` rows)."""
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(stream_runs.c.input_rows), 0))
                                .where(stream_runs.c.pipeline_id == pipeline_id)).scalar_one())


def postgres_alerts(pipeline_id: int) -> int:
    """Alert rows the fan-out has written to Postgres for the pipeline."""
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(fraud_alerts)
                                .where(fraud_alerts.c.pipeline_id == pipeline_id)).scalar_one())


def topic_records(topic: str) -> int:
    """Records written to ``topic`` so far (its end offsets summed; 0 before it exists)."""
    try:
        return sum(end_offsets(get_settings().kafka_bootstrap_servers, topic).values())
    except Exception:  # not created yet
        return 0


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) and the max; zeros when there is nothing."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return float(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))])

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": float(ordered[-1])}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem = Path("/proc/meminfo").read_text().split()[1]
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = -1.0
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "mem_gib": round(int(mem) / 1024 / 1024), "python": platform.python_version(),
            "java": java.splitlines()[0] if java else "?", "load_before": round(load, 2)}


def save(name: str, payload: dict[str, Any]) -> Path:
    """Writes bench/results/<name>-<utc timestamp>.json and returns its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def process_tree(root_pid: int) -> dict[int, list[str]]:
    """A process and its descendants: pid → the fields of ``/proc/<pid>/stat``, the command
    name at 0 and the fields after it from 1 (state 1, ppid 2, utime 12, stime 13)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        fields = [stat[stat.index("(") + 1:stat.rindex(")")], *stat[stat.rindex(")") + 2:].split()]
        stats[pid] = fields
        children.setdefault(int(fields[2]), []).append(pid)
    tree: dict[int, list[str]] = {}
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        if pid in stats:
            tree[pid] = stats[pid]
    return tree


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants, including
    their children that have exited (e.g. Python workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum(sum(int(fields[i]) for i in (12, 13, 14, 15))
               for fields in process_tree(root_pid).values()) / tick


def tree_rss_mib(root_pid: int) -> dict[str, float]:
    """Resident memory (MiB) of a process and its descendants, by command name (from /proc)."""
    out: dict[str, float] = {}
    for pid, fields in process_tree(root_pid).items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss = next((int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("VmRSS:")), 0)
        out[fields[0]] = round(out.get(fields[0], 0.0) + rss / 1024, 1)
    return out


def files_by_partition(actions: Iterable[dict[str, Any]], column: str) -> dict[str, dict[str, int]]:
    """Live data files and bytes per value of a partition column, from Delta log actions.

    ``actions`` are the log's JSON actions in commit order: an ``add`` makes a file live, a
    ``remove`` retires it (what a query reads after compaction). Files without the column get
    the key ``"?"``.
    """
    live: dict[str, tuple[str, int]] = {}
    for action in actions:
        if "add" in action:
            add = action["add"]
            value = (add.get("partitionValues") or {}).get(column)
            live[add["path"]] = ("?" if value is None else str(value), int(add.get("size") or 0))
        elif "remove" in action:
            live.pop(action["remove"]["path"], None)
    out: dict[str, dict[str, int]] = {}
    for value, size in live.values():
        slot = out.setdefault(value, {"files": 0, "bytes": 0})
        slot["files"] += 1
        slot["bytes"] += size
    return dict(sorted(out.items()))


def delta_log_actions(table_path: str) -> list[dict[str, Any]]:
    """Every action of a local Delta table's JSON commits, version 0 onwards (fresh tables only:
    it fails rather than guess when log cleanup has removed early commits)."""
    log_dir = Path(table_path.removeprefix("file:")) / "_delta_log"
    commits = sorted(log_dir.glob("[0-9]" * 20 + ".json"))
    versions = [int(p.stem) for p in commits]
    if versions != list(range(len(versions))):
        raise RuntimeError(f"{table_path}: the log does not start at version 0 or has gaps")
    return [json.loads(line) for p in commits for line in p.read_text().splitlines()
            if line.strip()]


def disk_files_by_partition(table_path: str, column: str) -> dict[str, dict[str, int]]:
    """Parquet files and bytes on disk per ``<column>=<value>`` directory (live or not)."""
    out: dict[str, dict[str, int]] = {}
    for part in sorted(Path(table_path).glob(f"{column}=*")):
        files = list(part.glob("*.parquet"))
        out[part.name.split("=", 1)[1]] = {"files": len(files),
                                           "bytes": sum(f.stat().st_size for f in files)}
    return out
