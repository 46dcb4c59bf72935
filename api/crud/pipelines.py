"""Pipeline operations: create (with its Kafka topic), read, status, schema evolution."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from api.crud import audit
from catalog.rules.field_types import FieldSpec
from catalog.tables import fraud_alerts, pipeline_schema_versions, pipelines, rules, stream_runs

PUBLIC_COLUMNS = (
    pipelines.c.id,
    pipelines.c.name,
    pipelines.c.kafka_topic,
    pipelines.c.status,
    pipelines.c.created_at,
    pipelines.c.key_field,
    pipelines.c.partitions,
    pipelines.c.schema_version,
    pipelines.c.rules_version,
    pipelines.c.updated_at,
)


def schema_to_json(fields: list[FieldSpec]) -> list[dict[str, Any]]:
    return [f.model_dump(mode="json") for f in fields]


def find_duplicate(conn: Connection, *, name: str, kafka_topic: str) -> str | None:
    """Why a pipeline with this name or topic cannot be created, or None."""
    row = conn.execute(
        select(pipelines.c.id, pipelines.c.name, pipelines.c.kafka_topic).where(
            (func.lower(pipelines.c.name) == name.lower())
            | (pipelines.c.kafka_topic == kafka_topic)
        )
    ).first()
    if row is None:
        return None
    if row.name.lower() == name.lower():
        return f"a pipeline named {row.name!r} already exists (id {row.id})"
    return f"topic {kafka_topic!r} is already used by pipeline {row.id} ({row.name!r})"


def create_pipeline(
    conn: Connection,
    *,
    actor: str,
    name: str,
    kafka_topic: str,
    fields: list[FieldSpec],
    key_field: str | None,
    partitions: int,
    status: str,
) -> int:
    """Insert the pipeline and its first schema version; returns its id."""
    schema = schema_to_json(fields)
    pipeline_id: int = conn.execute(
        insert(pipelines)
        .values(
            name=name,
            kafka_topic=kafka_topic,
            status=status,
            key_field=key_field,
            partitions=partitions,
            schema=schema,
            schema_version=1,
        )
        .returning(pipelines.c.id)
    ).scalar_one()
    conn.execute(
        insert(pipeline_schema_versions).values(
            pipeline_id=pipeline_id,
            schema_version=1,
            schema=schema,
            key_field=key_field,
            created_by=actor,
        )
    )
    audit.record(
        conn,
        actor=actor,
        action="pipeline.create",
        entity="pipeline",
        entity_id=pipeline_id,
        before=None,
        after=get_pipeline_row(conn, pipeline_id=pipeline_id),
    )
    return pipeline_id


def get_pipeline_row(conn: Connection, *, pipeline_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(pipelines).where(pipelines.c.id == pipeline_id)).first()
    return dict(row._mapping) if row is not None else None


def _alert_counts(conn: Connection) -> dict[int, int]:
    query = select(fraud_alerts.c.pipeline_id, func.count()).group_by(fraud_alerts.c.pipeline_id)
    return dict(conn.execute(query).tuples().all())


def list_pipelines(conn: Connection) -> list[dict[str, Any]]:
    counts = _alert_counts(conn)
    rows = conn.execute(select(*PUBLIC_COLUMNS).order_by(pipelines.c.id))
    return [dict(r._mapping, alert_count=counts.get(r.id, 0)) for r in rows]


def pipeline_detail(conn: Connection, *, pipeline_id: int) -> dict[str, Any] | None:
    row = get_pipeline_row(conn, pipeline_id=pipeline_id)
    if row is None:
        return None
    alert_count = conn.execute(
        select(func.count()).where(fraud_alerts.c.pipeline_id == pipeline_id)
    ).scalar_one()
    rule_count, active = conn.execute(
        select(func.count(), func.count().filter(rules.c.is_active.is_(True))).where(
            rules.c.pipeline_id == pipeline_id
        )
    ).one()
    return dict(row, alert_count=alert_count, rule_count=rule_count, active_rule_count=active)


def set_status(conn: Connection, *, actor: str, pipeline_id: int, status: str) -> bool:
    """Set the desired state; returns False when the pipeline does not exist."""
    before = get_pipeline_row(conn, pipeline_id=pipeline_id)
    if before is None:
        return False
    conn.execute(
        update(pipelines)
        .where(pipelines.c.id == pipeline_id)
        .values(status=status, updated_at=func.now())
    )
    audit.record(
        conn,
        actor=actor,
        action="pipeline.status",
        entity="pipeline",
        entity_id=pipeline_id,
        before=before,
        after=get_pipeline_row(conn, pipeline_id=pipeline_id),
    )
    return True


def evolve_schema(
    conn: Connection, *, actor: str, pipeline_id: int, fields: list[FieldSpec]
) -> int:
    """Store a new (already checked compatible) schema version; returns the version."""
    before = get_pipeline_row(conn, pipeline_id=pipeline_id)
    assert before is not None
    version = before["schema_version"] + 1
    schema = schema_to_json(fields)
    conn.execute(
        update(pipelines)
        .where(pipelines.c.id == pipeline_id)
        .values(schema=schema, schema_version=version, updated_at=func.now())
    )
    conn.execute(
        insert(pipeline_schema_versions).values(
            pipeline_id=pipeline_id,
            schema_version=version,
            schema=schema,
            key_field=before["key_field"],
            created_by=actor,
        )
    )
    audit.record(
        conn,
        actor=actor,
        action="pipeline.schema",
        entity="pipeline",
        entity_id=pipeline_id,
        before=before,
        after=get_pipeline_row(conn, pipeline_id=pipeline_id),
    )
    return version


def latest_run(conn: Connection, *, pipeline_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(stream_runs)
        .where(stream_runs.c.pipeline_id == pipeline_id)
        .order_by(stream_runs.c.started_at.desc(), stream_runs.c.id.desc())
        .limit(1)
    ).first()
    return dict(row._mapping) if row is not None else None
