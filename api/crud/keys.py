"""API key revocation: a key is deactivated (kept for the audit trail), never the last admin."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from api.crud import audit
from catalog.tables import api_keys


class LastAdminKey(Exception):
    """Revoking this key would leave no active admin key (nobody could manage keys again)."""


def revoke_key(conn: Connection, *, key_id: int, actor: str) -> bool:
    """Deactivate key `key_id`; False when there is no such key.

    The active admin keys are locked first, so two admins revoking each other at the same time
    cannot both succeed and leave none. Raises `LastAdminKey` for the last active admin key.
    """
    admins = conn.execute(
        select(api_keys.c.id)
        .where(api_keys.c.role == "admin", api_keys.c.is_active.is_(True))
        .with_for_update()
    ).scalars().all()
    if key_id in admins and len(admins) <= 1:
        raise LastAdminKey("refusing to revoke the last active admin key")
    result = conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(is_active=False))
    if result.rowcount == 0:
        return False
    audit.record(
        conn,
        actor=actor,
        action="api_key.revoke",
        entity="api_key",
        entity_id=key_id,
        before=None,
        after={"is_active": False},
    )
    return True
