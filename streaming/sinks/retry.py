"""Bounded exponential backoff shared by the sinks.

A sink that is down makes the batch wait and retry, never skip it; past the bound the error
propagates, the streaming query fails without committing the batch, and the restarted query
replays it into idempotent sinks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def with_retry(
    what: str,
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, at most ``attempts`` times, doubling the pause."""
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts:
                log.error("%s failed after %d attempts: %s", what, attempts, exc)
                raise
            log.warning("%s failed (attempt %d/%d), retrying in %.1fs: %s",
                        what, attempt, attempts, delay, exc)
            sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")
