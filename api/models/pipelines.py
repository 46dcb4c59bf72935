"""Pipeline models: a Kafka topic plus the JSON schema of its events."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.models.text import SafeText
from catalog.rules.field_types import FieldSpec

PipelineStatus = Literal["active", "paused", "stopped"]
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
"""Kafka's legal topic names; ``.`` and ``..`` are refused separately (Kafka refuses them)."""


class PipelineCreate(BaseModel):
    """A new pipeline (the seed's body, plus the optional event key and partition count)."""

    model_config = ConfigDict(extra="forbid")

    name: SafeText = Field(min_length=1, max_length=200)
    kafka_topic: str = Field(pattern=TOPIC_PATTERN, description="Kafka topic name")
    schema_: list[FieldSpec] = Field(alias="schema", min_length=1, max_length=500)
    key_field: SafeText | None = Field(
        default=None, max_length=128,
        description="field that identifies an event (default: first *_id field)",
    )
    partitions: int | None = Field(default=None, ge=1, le=256)
    status: PipelineStatus = "active"

    @field_validator("kafka_topic")
    @classmethod
    def _legal_topic(cls, topic: str) -> str:
        if topic in (".", ".."):
            raise ValueError(f"'{topic}' is not a legal Kafka topic name")
        return topic


class PipelineCreated(BaseModel):
    id: int
    message: str = "Pipeline created successfully"


class PipelinePublic(BaseModel):
    """A pipeline as listed by the API (the seed's fields first)."""

    id: int
    name: str
    kafka_topic: str
    status: PipelineStatus
    created_at: datetime
    alert_count: int
    key_field: str | None
    partitions: int
    schema_version: int
    rules_version: int
    updated_at: datetime


class PipelineDetail(PipelinePublic):
    schema_: list[FieldSpec] = Field(serialization_alias="schema")
    rule_count: int
    active_rule_count: int


class PipelineStatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: PipelineStatus


class PipelineStatusPublic(BaseModel):
    id: int
    status: PipelineStatus
    message: str


class SchemaUpdate(BaseModel):
    """A new schema version: compatible evolution only (new nullable fields, widened types)."""

    model_config = ConfigDict(extra="forbid")

    schema_: list[FieldSpec] = Field(alias="schema", min_length=1, max_length=500)


class SchemaUpdated(BaseModel):
    id: int
    schema_version: int
    message: str


class StreamHealth(BaseModel):
    """Progress of the pipeline's latest streaming run (from `stream_runs`)."""

    pipeline_id: int
    pipeline_status: PipelineStatus
    state: str
    rules_version: int | None = Field(
        default=None, description="the rule version the running stream's detect path evaluates")
    catalog_rules_version: int = Field(
        description="the pipeline's latest rule version; equal to rules_version once a rule "
        "change is in force")
    run: dict[str, object] | None
