"""Backtest models: a candidate rule over the archive (results only, never alerts), and the
look-back a new rule may ask for (alerts on the archive of its last N days)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.models.text import SafeText

MAX_SAMPLE = 1000


class BacktestCreate(BaseModel):
    """What to backtest: an expression and the event-time range ``[since, until)``."""

    model_config = ConfigDict(extra="forbid")

    rule_expression: SafeText = Field(min_length=1, max_length=4000)
    since: datetime = Field(description="ISO-8601; without an offset it is read as UTC")
    until: datetime = Field(description="ISO-8601, exclusive; without an offset, UTC")
    sample_size: int = Field(default=20, ge=0, le=MAX_SAMPLE,
                             description="how many matching events to keep as a sample")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    @model_validator(mode="after")
    def _ordered(self) -> BacktestCreate:
        if self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class BacktestQueued(BaseModel):
    """A queued job: poll ``poll_url`` until ``status`` is succeeded or failed."""

    id: int
    status: str = "queued"
    poll_url: str


class BacktestPublic(BaseModel):
    """A backtest or look-back job, with its results once it succeeded."""

    id: int
    pipeline_id: int
    kind: Literal["backtest", "lookback"]
    rule_id: int | None
    rule_version: int | None
    rule_expression: str
    since: datetime
    until: datetime
    sample_size: int
    status: Literal["queued", "running", "succeeded", "failed"]
    delta_version: int | None
    results: dict[str, Any] | None
    error: str | None
    requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
