"""Whether a process still exists: how the stream host and the class-archive build watch theirs."""

from __future__ import annotations

import os


def owner_alive(pid: int | None) -> bool:
    """Whether the process that asked for a query still exists (None: no owner to watch)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
