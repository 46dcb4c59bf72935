"""`/api/keys` (admin): issue, list and revoke API keys; `/api/audit`: the change log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select

from api.crud import audit
from api.crud import keys as keys_crud
from api.deps import Admin, EngineDep
from api.errors import conflict, not_found
from api.models.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, AuditEntry
from api.params import INT32_MAX, KeyId
from catalog.api_keys import create_key
from catalog.tables import api_keys

router = APIRouter(tags=["admin"])


@router.post("/api/keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_api_key(body: ApiKeyCreate, engine: EngineDep, who: Admin) -> ApiKeyCreated:
    """Issue a key with a role; the key is shown once and stored only as a hash."""
    with engine.begin() as conn:
        taken = conn.execute(select(api_keys.c.id).where(api_keys.c.name == body.name)).first()
        if taken is not None:
            raise conflict(f"an API key named {body.name!r} already exists")
        key = create_key(conn, name=body.name, role=body.role)
        key_id = conn.execute(
            select(api_keys.c.id).where(api_keys.c.name == body.name)
        ).scalar_one()
        audit.record(
            conn,
            actor=who.name,
            action="api_key.create",
            entity="api_key",
            entity_id=key_id,
            before=None,
            after={"name": body.name, "role": body.role},
        )
    return ApiKeyCreated(id=key_id, name=body.name, role=body.role, key=key)


@router.get("/api/keys", response_model=list[ApiKeyPublic])
def list_api_keys(engine: EngineDep, who: Admin) -> list[dict[str, Any]]:
    cols = [c for c in api_keys.c if c.name != "key_hash"]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(*cols).order_by(api_keys.c.id))]


@router.delete("/api/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_api_key(key_id: KeyId, engine: EngineDep, who: Admin) -> Response:
    """Revoke a key (kept for the audit trail). The key in use and the last admin key stay."""
    if key_id == who.key_id:
        raise conflict("refusing to revoke the key this request is made with; use another key")
    try:
        with engine.begin() as conn:
            if not keys_crud.revoke_key(conn, key_id=key_id, actor=who.name):
                raise not_found("API key", key_id)
    except keys_crud.LastAdminKey as exc:
        raise conflict(str(exc)) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/audit", response_model=list[AuditEntry])
def list_audit(
    engine: EngineDep,
    who: Admin,
    entity: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
    entity_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Who changed what, newest first."""
    with engine.connect() as conn:
        return audit.list_entries(conn, entity=entity, entity_id=entity_id, limit=limit)
