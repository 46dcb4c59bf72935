"""What the lakehouse SQL endpoint shows of each pipeline: table names, and the union views' SQL.

Per pipeline ``bronze.<slug>_events``, ``bronze.<slug>_quarantine`` and ``silver.<slug>_alerts``
(``slug`` = SQL-safe name, ``_<id>`` added when two names collide), and three
pipeline-agnostic views that the dbt sources read, since pipelines come and go at run time while
dbt models are static:

- ``bronze.all_events``: pipeline_id, pipeline_name, event_id, key_value, event_time,
  event_date, kafka_timestamp, kafka_partition, kafka_offset, ingested_at, schema_version,
  event_json (``to_json(struct(<the pipeline's fields>))``);
- ``silver.all_alerts``: pipeline_name + the alert columns of ``streaming.alerts``;
- ``bronze.all_quarantine``: pipeline_id, pipeline_name + the quarantine columns.

Pure text (no connection): ``orchestration.lake.registration`` runs it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from catalog.rules.field_types import default_key_field, parse_schema

EVENT_TIME_NAMES = ("event_time", "event_timestamp", "timestamp", "ts", "transaction_time")

EVENT_METADATA = ("_event_id", "_kafka_partition", "_kafka_offset", "_kafka_timestamp",
                  "_ingested_at", "_schema_version", "event_date")

ALERT_COLUMNS = (("alert_id", "string"), ("pipeline_id", "int"), ("rule_id", "int"),
                 ("rule_version", "int"), ("severity", "string"), ("score", "double"),
                 ("rule_description", "string"), ("event_id", "string"),
                 ("event_time", "timestamp"), ("alert_timestamp", "timestamp"),
                 ("transaction_data", "string"), ("kafka_partition", "int"),
                 ("kafka_offset", "bigint"))

QUARANTINE_COLUMNS = (("raw_value", "binary"), ("reason", "string"), ("topic", "string"),
                      ("kafka_partition", "int"), ("kafka_offset", "bigint"),
                      ("kafka_timestamp", "timestamp"), ("quarantined_at", "timestamp"),
                      ("quarantine_date", "date"))

EVENT_COLUMNS = (("pipeline_id", "int"), ("pipeline_name", "string"), ("event_id", "string"),
                 ("key_value", "string"), ("event_time", "timestamp"), ("event_date", "date"),
                 ("kafka_timestamp", "timestamp"), ("kafka_partition", "int"),
                 ("kafka_offset", "bigint"), ("ingested_at", "timestamp"),
                 ("schema_version", "int"), ("event_json", "string"))

KINDS = {"events": "bronze", "quarantine": "bronze", "alerts": "silver"}

UNION_VIEWS = {"events": "all_events", "quarantine": "all_quarantine", "alerts": "all_alerts"}

FINGERPRINT = "sentinel.fingerprint"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def quote_ident(name: str) -> str:
    """A validated, back-quoted identifier (letters, digits, underscores only)."""
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name[:60]!r}")
    return f"`{name}`"


def sql_string(value: str) -> str:
    """A Spark SQL string literal (backslash escapes are on by default in Spark)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return "'" + escaped.replace("\r", "\\r") + "'"


def slugify(name: str, max_len: int = 48) -> str:
    """Lowercase ASCII letters/digits/underscores, not starting with a digit, never empty."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:max_len].strip("_")
    if not slug:
        return "pipeline"
    return f"p_{slug}" if slug[0].isdigit() else slug


def assign_slugs(rows: Iterable[tuple[int, str]]) -> dict[int, str]:
    """``{pipeline id: slug}``; on a collision the lowest id keeps the bare slug."""
    taken: set[str] = set()
    out: dict[int, str] = {}
    for pid, name in sorted(rows):
        slug = slugify(name)
        if slug in taken or slug == "all":
            slug = f"{slug}_{pid}"
        while slug in taken:
            slug = f"{slug}_{pid}"
        taken.add(slug)
        out[pid] = slug
    return out


@dataclass(frozen=True)
class PipelineRow:
    id: int
    name: str
    key_field: str | None
    schema: list[dict[str, Any]]
    schema_version: int

    @property
    def key(self) -> str | None:
        if self.key_field:
            return self.key_field
        try:
            return default_key_field(parse_schema(self.schema))
        except Exception:  # a schema the API would refuse: no key
            return None


@dataclass(frozen=True)
class Table:
    pipeline: PipelineRow
    kind: str  # events | quarantine | alerts
    schema: str
    name: str
    location: str

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


def desired_tables(rows: Sequence[PipelineRow], root: str, prefix: str = "") -> list[Table]:
    slugs = assign_slugs((p.id, p.name) for p in rows)
    out = []
    for p in rows:
        base = f"{root.rstrip('/')}"
        paths = {"events": f"{base}/bronze/pipeline_{p.id}/events",
                 "quarantine": f"{base}/bronze/pipeline_{p.id}/quarantine",
                 "alerts": f"{base}/silver/pipeline_{p.id}/alerts"}
        for kind, schema in KINDS.items():
            out.append(Table(p, kind, prefix + schema, f"{slugs[p.id]}_{kind}", paths[kind]))
    return out


def event_time_column(columns: Sequence[tuple[str, str]]) -> str | None:
    """Mirror of ``streaming.schema.event_time_field`` over the table's columns."""
    stamps = [n for n, t in columns if t in ("timestamp", "timestamp_ntz")
              and n not in EVENT_METADATA]
    for wanted in EVENT_TIME_NAMES:
        for name in stamps:
            if name.lower() == wanted:
                return name
    return next((n for n in stamps if n.lower().endswith(("_time", "_timestamp"))), None)


def event_select(t: Table, columns: Sequence[tuple[str, str]]) -> str:
    p, names = t.pipeline, [n for n, _ in columns]
    fields = [n for n in names if n not in EVENT_METADATA]
    declared = [f["name"] for f in p.schema if f.get("name") in fields]
    fields = declared + [n for n in fields if n not in declared]
    key = f"cast({quote_ident(p.key)} as string)" if p.key in fields else "`_event_id`"
    time_col = event_time_column(columns)
    event_time = (f"coalesce(cast({quote_ident(time_col)} as timestamp), `_kafka_timestamp`)"
                  if time_col else "`_kafka_timestamp`")
    payload = ", ".join(quote_ident(f) for f in fields)
    return (
        f"select {int(p.id)} as pipeline_id, {sql_string(p.name)} as pipeline_name, "
        f"cast(`_event_id` as string) as event_id, {key} as key_value, "
        f"{event_time} as event_time, `event_date`, `_kafka_timestamp` as kafka_timestamp, "
        "cast(`_kafka_partition` as int) as kafka_partition, "
        "cast(`_kafka_offset` as bigint) as kafka_offset, `_ingested_at` as ingested_at, "
        "cast(`_schema_version` as int) as schema_version, "
        f"to_json(struct({payload})) as event_json from {t.qualified}")


def fixed_select(t: Table, columns: Sequence[tuple[str, str]]) -> str:
    p = t.pipeline
    cols = ", ".join(f"cast({quote_ident(n)} as {ty}) as {quote_ident(n)}" for n, ty in columns
                     if n != "pipeline_id")
    return (f"select {int(p.id)} as pipeline_id, {sql_string(p.name)} as pipeline_name, "
            f"{cols} from {t.qualified}")


def empty_select(columns: Sequence[tuple[str, str]]) -> str:
    cols = ", ".join(f"cast(null as {ty}) as {quote_ident(n)}" for n, ty in columns)
    return f"select {cols} where false"


def union_sql(kind: str, tables: Sequence[tuple[Table, list[tuple[str, str]]]]) -> str:
    if kind == "events":
        parts = [event_select(t, cols) for t, cols in tables]
        shape: Sequence[tuple[str, str]] = EVENT_COLUMNS
    else:
        fixed = ALERT_COLUMNS if kind == "alerts" else QUARANTINE_COLUMNS
        parts = [fixed_select(t, fixed) for t, _ in tables]
        shape = ((("pipeline_id", "int"), ("pipeline_name", "string"))
                 + tuple(c for c in fixed if c[0] != "pipeline_id"))
    return "\nunion all\n".join(parts) if parts else empty_select(shape)


def fingerprint(rows: Sequence[PipelineRow], included: Iterable[str], root: str) -> str:
    data = {"root": root, "tables": sorted(included), "pipelines": [
        [p.id, p.name, p.key_field, p.schema_version, p.schema] for p in rows]}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]
