"""Small helpers shared by tests."""

from __future__ import annotations


def auth(key: str) -> dict[str, str]:
    """Request headers that present an API key."""
    return {"X-API-Key": key}
