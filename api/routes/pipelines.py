"""`/api/pipelines`: create, list, inspect, pause/stop, evolve the schema, stream health."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, status
from sqlalchemy.exc import IntegrityError

from api.crud import pipelines as crud
from api.deps import Admin, EngineDep, SettingsDep, Viewer
from api.errors import conflict, not_found, unavailable, unprocessable
from api.kafka_topics import InvalidTopic, KafkaUnavailable, ensure_topic
from api.models.pipelines import (
    PipelineCreate,
    PipelineCreated,
    PipelineDetail,
    PipelinePublic,
    PipelineStatusPublic,
    PipelineStatusUpdate,
    SchemaUpdate,
    SchemaUpdated,
    StreamHealth,
)
from api.params import PipelineId
from catalog.rules.field_types import (
    FieldSpec,
    SchemaError,
    default_key_field,
    schema_change_problems,
    validate_schema,
)

router = APIRouter(prefix="/api/pipelines", tags=["pipelines"])
log = logging.getLogger("sentinel.api")


def _check_schema(fields: list[FieldSpec]) -> None:
    try:
        validate_schema(fields)
    except SchemaError as exc:
        raise unprocessable(["body", "schema"], str(exc)) from exc


def _resolve_key_field(body: PipelineCreate) -> str | None:
    if body.key_field is None:
        return default_key_field(body.schema_)
    by_lower = {f.name.lower(): f for f in body.schema_}
    field = by_lower.get(body.key_field.lower())
    if field is None:
        names = ", ".join(f.name for f in body.schema_)
        raise unprocessable(
            ["body", "key_field"],
            f"key_field {body.key_field!r} is not a field of the schema (fields: {names})",
        )
    if field.nullable:
        raise unprocessable(["body", "key_field"], f"key_field {field.name!r} must be non-nullable")
    return field.name


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PipelineCreated)
def create_pipeline(body: PipelineCreate, engine: EngineDep, settings: SettingsDep, who: Admin):
    """Create a pipeline and its Kafka topic (refused with 409 if name or topic is taken)."""
    _check_schema(body.schema_)
    key_field = _resolve_key_field(body)
    partitions = body.partitions or settings.kafka_default_partitions
    try:
        with engine.begin() as conn:
            duplicate = crud.find_duplicate(conn, name=body.name, kafka_topic=body.kafka_topic)
            if duplicate:
                raise conflict(duplicate)
            pipeline_id = crud.create_pipeline(
                conn,
                actor=who.name,
                name=body.name,
                kafka_topic=body.kafka_topic,
                fields=body.schema_,
                key_field=key_field,
                partitions=partitions,
                status=body.status,
            )
            # The topic is created inside the transaction: if Kafka refuses, nothing is stored.
            ensure_topic(settings, topic=body.kafka_topic, partitions=partitions)
    except InvalidTopic as exc:
        raise unprocessable(["body", "kafka_topic"], str(exc)) from exc
    except KafkaUnavailable as exc:
        log.warning("pipeline %r not created: %s", body.name, exc)
        raise unavailable("pipeline not created: Kafka is unavailable; retry shortly") from exc
    except IntegrityError as exc:
        raise conflict("a pipeline with this name or topic already exists") from exc
    return PipelineCreated(id=pipeline_id)


@router.get("", response_model=list[PipelinePublic])
def list_pipelines(engine: EngineDep, who: Viewer) -> list[dict[str, Any]]:
    """Every pipeline with its alert count."""
    with engine.connect() as conn:
        return crud.list_pipelines(conn)


@router.get("/{pipeline_id}", response_model=PipelineDetail, response_model_by_alias=True)
def get_pipeline(pipeline_id: PipelineId, engine: EngineDep, who: Viewer) -> dict[str, Any]:
    with engine.connect() as conn:
        detail = crud.pipeline_detail(conn, pipeline_id=pipeline_id)
    if detail is None:
        raise not_found("pipeline", pipeline_id)
    detail["schema_"] = detail.pop("schema")
    return detail


@router.get("/{pipeline_id}/schema", response_model=list[FieldSpec])
def get_schema(pipeline_id: PipelineId, engine: EngineDep, who: Viewer) -> list[dict[str, Any]]:
    """The pipeline's current schema: a list of {name, type, nullable}."""
    with engine.connect() as conn:
        row = crud.get_pipeline_row(conn, pipeline_id=pipeline_id)
    if row is None:
        raise not_found("pipeline", pipeline_id)
    schema: list[dict[str, Any]] = row["schema"]
    return schema


@router.put("/{pipeline_id}/schema", response_model=SchemaUpdated)
def put_schema(
    pipeline_id: PipelineId,
    body: SchemaUpdate | list[FieldSpec],
    engine: EngineDep,
    who: Admin,
) -> SchemaUpdated:
    """Evolve the schema compatibly (add nullable fields, widen types); else 409 with why."""
    fields = body if isinstance(body, list) else body.schema_
    _check_schema(fields)
    with engine.begin() as conn:
        row = crud.get_pipeline_row(conn, pipeline_id=pipeline_id)
        if row is None:
            raise not_found("pipeline", pipeline_id)
        old = [FieldSpec.model_validate(f) for f in row["schema"]]
        problems = schema_change_problems(old, fields)
        if problems:
            raise conflict("incompatible schema change: " + "; ".join(problems))
        if [f.model_dump() for f in old] == [f.model_dump() for f in fields]:
            return SchemaUpdated(
                id=pipeline_id, schema_version=row["schema_version"], message="Schema unchanged"
            )
        version = crud.evolve_schema(conn, actor=who.name, pipeline_id=pipeline_id, fields=fields)
    return SchemaUpdated(id=pipeline_id, schema_version=version, message="Schema updated")


@router.patch("/{pipeline_id}/status", response_model=PipelineStatusPublic)
def set_status(
    pipeline_id: PipelineId, body: PipelineStatusUpdate, engine: EngineDep, who: Admin
) -> PipelineStatusPublic:
    """Set the desired state: the orchestrator starts or stops the stream to match."""
    with engine.begin() as conn:
        if not crud.set_status(conn, actor=who.name, pipeline_id=pipeline_id, status=body.status):
            raise not_found("pipeline", pipeline_id)
    return PipelineStatusPublic(
        id=pipeline_id, status=body.status, message=f"Pipeline status set to {body.status}"
    )


@router.get("/{pipeline_id}/health", response_model=StreamHealth)
def get_health(pipeline_id: PipelineId, engine: EngineDep, who: Viewer) -> StreamHealth:
    """The latest streaming run's progress: batch, rows/s, duration, alerts, lag, last error."""
    with engine.connect() as conn:
        row = crud.get_pipeline_row(conn, pipeline_id=pipeline_id)
        if row is None:
            raise not_found("pipeline", pipeline_id)
        run = crud.latest_run(conn, pipeline_id=pipeline_id)
    state = "never_started" if run is None else str(run["status"])
    run_json = None if run is None else {k: v for k, v in run.items() if k != "pipeline_id"}
    in_force = None if run is None or run["ended_at"] is not None else run["rules_version"]
    return StreamHealth(
        pipeline_id=pipeline_id, pipeline_status=row["status"], state=state,
        rules_version=in_force, catalog_rules_version=row["rules_version"], run=run_json,
    )
