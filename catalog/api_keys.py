"""API keys: issued once, stored only as a hash, each carrying a role.

A key looks like `snl_<prefix>_<secret>`; the prefix finds the row, the SHA-256 of the
whole key proves possession (keys are 256-bit random, so a fast hash is adequate).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.sql import func

from catalog.tables import ROLES, api_keys

KEY_SCHEME = "snl"


@dataclass(frozen=True)
class ApiKeyIdentity:
    """Who is calling: the key's name (the audit actor) and its role."""

    key_id: int
    name: str
    role: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _split(key: str) -> str | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        return None
    return parts[1]


def create_key(conn: Connection, *, name: str, role: str) -> str:
    """Create a key and return its plain text (the only time it is ever visible)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    prefix = secrets.token_hex(6)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32).replace('_', '-')}"
    conn.execute(
        insert(api_keys).values(name=name, prefix=prefix, key_hash=hash_key(key), role=role)
    )
    return key


def authenticate(conn: Connection, *, key: str) -> ApiKeyIdentity | None:
    """The identity behind a presented key, or None when it is unknown or revoked."""
    prefix = _split(key)
    if prefix is None:
        return None
    row = conn.execute(
        select(api_keys.c.id, api_keys.c.name, api_keys.c.role, api_keys.c.key_hash).where(
            api_keys.c.prefix == prefix, api_keys.c.is_active.is_(True)
        )
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=func.now()))
    return ApiKeyIdentity(key_id=row.id, name=row.name, role=row.role)
