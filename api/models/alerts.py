"""Alert models: one rule matched by one event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AlertPublic(BaseModel):
    """An alert (the seed's fields first, then identity and provenance)."""

    id: int
    pipeline_id: int
    severity: str
    rule_description: str | None
    alert_timestamp: datetime
    transaction_data: dict[str, Any]
    alert_id: str
    rule_id: int
    rule_version: int
    score: float | None
    event_id: str
    event_time: datetime | None
    kafka_partition: int | None
    kafka_offset: int | None


class RiskPublic(BaseModel):
    """The answer to "is this transaction risky?" (from Redis)."""

    event_id: str
    risky: bool
    score: float | None = None
    severity: str | None = None
    rule_ids: list[int] = []
    pipeline_id: int | None = None
    alert_time: str | None = None
