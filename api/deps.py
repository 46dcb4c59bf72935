"""Shared dependencies: the catalog engine, the caller's identity and role checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, status
from redis import Redis
from sqlalchemy import Engine

from catalog.api_keys import ApiKeyIdentity, authenticate
from catalog.db import get_engine
from catalog.settings import Settings, get_settings

ROLE_RANK = {"viewer": 0, "analyst": 1, "admin": 2}


def engine_dep() -> Engine:
    return get_engine()


def settings_dep() -> Settings:
    return get_settings()


_redis: dict[str, Redis] = {}


def redis_dep() -> Redis:
    """A shared Redis client (connection-pooled, short timeouts)."""
    dsn = get_settings().redis_dsn
    if dsn not in _redis:
        _redis[dsn] = Redis.from_url(
            dsn, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
    return _redis[dsn]


EngineDep = Annotated[Engine, Depends(engine_dep)]
SettingsDep = Annotated[Settings, Depends(settings_dep)]
RedisDep = Annotated[Redis, Depends(redis_dep)]


def _presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def current_identity(
    engine: EngineDep,
    x_api_key: Annotated[str | None, Header(description="API key")] = None,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> ApiKeyIdentity:
    """The caller, authenticated by `X-API-Key` or `Authorization: Bearer`."""
    key = _presented_key(x_api_key, authorization)
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing API key: send it in the X-API-Key header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with engine.begin() as conn:
        identity = authenticate(conn, key=key)
    if identity is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="invalid or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return identity


def require_role(minimum: str) -> Callable[..., ApiKeyIdentity]:
    """A dependency that lets through callers whose role is at least `minimum`."""

    def check(identity: Annotated[ApiKeyIdentity, Depends(current_identity)]) -> ApiKeyIdentity:
        if ROLE_RANK[identity.role] < ROLE_RANK[minimum]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role '{identity.role}' may not do this; it needs '{minimum}' or higher",
            )
        return identity

    return check


Viewer = Annotated[ApiKeyIdentity, Depends(require_role("viewer"))]
Analyst = Annotated[ApiKeyIdentity, Depends(require_role("analyst"))]
Admin = Annotated[ApiKeyIdentity, Depends(require_role("admin"))]
