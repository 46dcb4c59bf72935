"""Liveness (`/healthz`) and readiness (`/readyz`: Postgres, Redis and Kafka reachable)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import EngineDep, RedisDep, SettingsDep
from api.kafka_topics import kafka_reachable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(
    response: Response, engine: EngineDep, redis: RedisDep, settings: SettingsDep
) -> dict[str, object]:
    """Every dependency answers; 503 names the ones that do not."""
    checks: dict[str, bool] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        checks["postgres"] = True
    except SQLAlchemyError:
        checks["postgres"] = False
    try:
        checks["redis"] = bool(redis.ping())
    except RedisError:
        checks["redis"] = False
    checks["kafka"] = kafka_reachable(settings)
    ready = all(checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ready" if ready else "not ready", "checks": checks}
