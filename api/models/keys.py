"""API key and audit models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "analyst", "viewer"]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9 ._@-]+$")
    role: Role


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    role: Role
    key: str = Field(description="shown once; only its hash is stored")


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    role: Role
    prefix: str
    is_active: bool
    created_at: datetime
    last_used_at: datetime | None


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
