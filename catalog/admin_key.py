"""Create the first admin API key once: `python -m catalog.admin_key ensure`.

The key is written to `$SENTINEL_HOME/admin-api-key` (mode 0600) and never printed;
a second run finds the key (file and row) and changes nothing. A checkout whose file is
missing gets a key of its own (`bootstrap-admin-2`, ...); no other key is revoked.
"""

from __future__ import annotations

import argparse
import os
import sys

from sqlalchemy import select

from catalog.api_keys import authenticate, create_key
from catalog.db import transaction
from catalog.settings import get_settings
from catalog.tables import api_keys

ADMIN_KEY_NAME = "bootstrap-admin"


def ensure_admin_key() -> tuple[str, bool]:
    """Return (path of the key file, whether a new key was created)."""
    path = get_settings().admin_key_file
    with transaction() as conn:
        if path.exists():
            existing = path.read_text().strip()
            if authenticate(conn, key=existing) is not None:
                return str(path), False
        # The file is missing (a new checkout or home) or holds a key the catalog no longer
        # accepts: issue another admin key. Keys of other checkouts are left alone.
        taken = {r.name for r in conn.execute(select(api_keys.c.name))}
        name = ADMIN_KEY_NAME
        suffix = 1
        while name in taken:
            suffix += 1
            name = f"{ADMIN_KEY_NAME}-{suffix}"
        key = create_key(conn, name=name, role="admin")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
    return str(path), True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["ensure"])
    parser.parse_args()
    path, created = ensure_admin_key()
    state = "created" if created else "already present"
    sys.stdout.write(f"admin API key {state}: {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
