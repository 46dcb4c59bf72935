"""`/api/transactions/{event_id}/risk`: the sub-millisecond "is this risky?" look-up (Redis)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from redis.exceptions import RedisError

from api.deps import RedisDep, Viewer
from api.errors import unavailable
from api.models.alerts import RiskPublic

router = APIRouter(tags=["risk"])

TXN_KEY = "fraud:txn:{event_id}"


def _float_or_none(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


@router.get("/api/transactions/{event_id}/risk", response_model=RiskPublic)
def get_risk(
    event_id: Annotated[str, Path(min_length=1, max_length=512)], redis: RedisDep, who: Viewer
) -> RiskPublic:
    """Score, severity and matched rules of an event; `risky: false` when no rule matched."""
    try:
        data: dict[str, str] = redis.hgetall(TXN_KEY.format(event_id=event_id))
    except RedisError as exc:
        raise unavailable(f"risk store (Redis) unavailable: {type(exc).__name__}") from exc
    if not data:
        return RiskPublic(event_id=event_id, risky=False)
    rule_ids = [int(r) for r in data.get("rule_ids", "").split(",") if r.strip().isdigit()]
    pipeline = data.get("pipeline_id")
    return RiskPublic(
        event_id=event_id,
        risky=True,
        score=_float_or_none(data.get("score")),
        severity=data.get("severity"),
        rule_ids=rule_ids,
        pipeline_id=int(pipeline) if pipeline and pipeline.isdigit() else None,
        alert_time=data.get("alert_time"),
    )
