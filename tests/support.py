"""Small helpers shared by tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def auth(key: str) -> dict[str, str]:
    """Request headers that present an API key."""
    return {"X-API-Key": key}


def wait_for(what: str, fn: Callable[[], T | None], timeout: float, every: float = 2.0) -> T:
    """Poll ``fn`` until it returns something truthy; fail with ``what`` (and the last answer)
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last: {got!r})")
        time.sleep(every)
