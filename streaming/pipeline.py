"""What the streaming job reads about its pipeline from the catalog, and where it writes.

Warehouse layout (docs/architecture.md, Contracts), with ``<p>`` = ``pipeline_<id>`` (ids never
change, names may):
``bronze/<p>/events``, ``bronze/<p>/quarantine``, ``silver/<p>/alerts``, ``_checkpoints/<p>/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from catalog.db import get_engine
from catalog.tables import pipelines
from streaming.schema import Field, fields_of, key_field_of


@dataclass(frozen=True)
class Pipeline:
    """A pipeline as the engine sees it: topic, typed fields and event-id field."""

    id: int
    name: str
    topic: str
    status: str
    schema: list[dict[str, Any]]
    schema_version: int
    key_field: str | None

    @property
    def fields(self) -> list[Field]:
        return fields_of(self.schema)

    @property
    def event_id_field(self) -> str | None:
        return key_field_of(self.schema, self.key_field)

    @property
    def slug(self) -> str:
        return f"pipeline_{self.id}"


def load_pipeline(pipeline_id: int) -> Pipeline:
    """The pipeline row, or ``LookupError`` when it does not exist."""
    with get_engine().connect() as conn:
        row = conn.execute(select(pipelines).where(pipelines.c.id == pipeline_id)).first()
    if row is None:
        raise LookupError(f"pipeline {pipeline_id} does not exist")
    return Pipeline(
        id=row.id,
        name=row.name,
        topic=row.kafka_topic,
        status=row.status,
        schema=list(row.schema),
        schema_version=row.schema_version,
        key_field=row.key_field,
    )


def pipeline_status(pipeline_id: int) -> str | None:
    """``active``/``paused``/``stopped``, or ``None`` when the pipeline was deleted."""
    with get_engine().connect() as conn:
        return conn.execute(
            select(pipelines.c.status).where(pipelines.c.id == pipeline_id)
        ).scalar_one_or_none()


@dataclass(frozen=True)
class Paths:
    """The Delta tables and checkpoint of one pipeline under a warehouse root."""

    root: str
    slug: str

    @property
    def events(self) -> str:
        return f"{self.root}/bronze/{self.slug}/events"

    @property
    def quarantine(self) -> str:
        return f"{self.root}/bronze/{self.slug}/quarantine"

    @property
    def alerts(self) -> str:
        return f"{self.root}/silver/{self.slug}/alerts"

    @property
    def checkpoint(self) -> str:
        return f"{self.root}/_checkpoints/{self.slug}"
