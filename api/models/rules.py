"""Rule models: a Spark SQL boolean expression over a pipeline's fields."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.models.text import SafeText

Severity = Literal["critical", "warning", "info"]


class RuleCreate(BaseModel):
    """A new detection rule (the seed's body plus an optional score)."""

    model_config = ConfigDict(extra="forbid")

    rule_expression: SafeText = Field(min_length=1, max_length=4000)
    severity: Severity = "warning"
    description: SafeText | None = Field(default=None, max_length=2000)
    score: float | None = Field(default=None, ge=0, le=100)
    is_active: bool = True
    lookback_days: int | None = Field(
        default=None, ge=1, le=365,
        description="also alert on archived events of the last N days (a look-back job)",
    )


class LookbackQueued(BaseModel):
    """The look-back job a new rule queued: poll ``poll_url`` for its progress."""

    id: int
    status: str = "queued"
    poll_url: str


class RuleCreated(BaseModel):
    id: int
    status: str = "Rule added successfully"
    version: int = 1
    lookback: LookbackQueued | None = None  # only present when lookback_days was given


class RuleUpdate(BaseModel):
    """A partial edit of a rule; every edit becomes a new rule version."""

    model_config = ConfigDict(extra="forbid")

    rule_expression: SafeText | None = Field(default=None, min_length=1, max_length=4000)
    severity: Severity | None = None
    description: SafeText | None = Field(default=None, max_length=2000)
    score: float | None = Field(default=None, ge=0, le=100)
    is_active: bool | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> RuleUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of: " + ", ".join(RuleUpdate.model_fields))
        for name in ("rule_expression", "severity", "is_active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class RuleStatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_active: bool


class RulePublic(BaseModel):
    id: int
    pipeline_id: int
    rule_expression: str
    severity: Severity
    score: float | None
    description: str | None
    is_active: bool
    version: int
    state: Literal["ok", "error"]
    error_message: str | None
    created_at: datetime
    updated_at: datetime


class RuleVersionPublic(BaseModel):
    version: int
    rule_expression: str
    severity: Severity
    score: float | None
    description: str | None
    is_active: bool
    changed_by: str | None
    created_at: datetime


class RuleValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: int = Field(ge=1, le=2_147_483_647)
    rule_expression: SafeText = Field(min_length=1, max_length=100_000)


class RuleValidateResult(BaseModel):
    """Dry run of the rule validator: valid, or the error and where it is."""

    valid: bool
    normalized: str | None = None
    columns: list[str] = []
    error: dict[str, object] | None = None
