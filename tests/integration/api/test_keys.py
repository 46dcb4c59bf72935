"""Key administration is for admins only, and the last active admin key cannot be revoked."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update

from api.crud.keys import LastAdminKey, revoke_key
from catalog.api_keys import create_key
from catalog.db import get_engine
from catalog.tables import api_keys
from tests.support import auth

pytestmark = pytest.mark.integration


def key_id(name: str) -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).scalar_one())


def is_active(kid: int) -> bool:
    with get_engine().connect() as conn:
        return bool(conn.execute(
            select(api_keys.c.is_active).where(api_keys.c.id == kid)).scalar_one())


@pytest.mark.parametrize("role", ["analyst", "viewer"])
def test_analysts_and_viewers_may_not_list_or_revoke_keys(client, api_keys, role):
    name = f"target-{uuid.uuid4().hex[:8]}"
    with get_engine().begin() as conn:
        target = create_key(conn, name=name, role="viewer")
    tid = key_id(name)
    listed = client.get("/api/keys", headers=auth(api_keys[role]))
    assert listed.status_code == 403 and "needs 'admin'" in listed.json()["detail"]
    revoked = client.delete(f"/api/keys/{tid}", headers=auth(api_keys[role]))
    assert revoked.status_code == 403
    assert is_active(tid)
    assert client.get("/api/pipelines", headers=auth(target)).status_code == 200


def test_an_admin_may_revoke_another_admin_while_one_remains(client, api_keys):
    name = f"second-admin-{uuid.uuid4().hex[:8]}"
    with get_engine().begin() as conn:
        create_key(conn, name=name, role="admin")
    resp = client.delete(f"/api/keys/{key_id(name)}", headers=auth(api_keys["admin"]))
    assert resp.status_code == 204 and not is_active(key_id(name))


def test_the_last_active_admin_key_is_never_revoked(catalog_db):
    name = f"last-admin-{uuid.uuid4().hex[:8]}"
    with get_engine().begin() as conn:
        create_key(conn, name=name, role="admin")
    last = key_id(name)
    engine = get_engine()
    with engine.connect() as conn:
        others = list(conn.execute(select(api_keys.c.id).where(
            api_keys.c.role == "admin", api_keys.c.is_active.is_(True), api_keys.c.id != last
        )).scalars())
    try:
        with engine.begin() as conn:
            conn.execute(update(api_keys).where(api_keys.c.id.in_(others)).values(is_active=False))
        with pytest.raises(LastAdminKey), engine.begin() as conn:
            revoke_key(conn, key_id=last, actor="test")
        assert is_active(last)
        # Another admin makes it revocable.
        with engine.begin() as conn:
            conn.execute(update(api_keys).where(api_keys.c.id.in_(others)).values(is_active=True))
            assert revoke_key(conn, key_id=last, actor="test") is True
        assert not is_active(last)
    finally:
        with engine.begin() as conn:
            conn.execute(update(api_keys).where(api_keys.c.id.in_(others)).values(is_active=True))
