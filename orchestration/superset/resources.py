"""The stack's Superset as a Dagster resource: provisioned as code through its REST API."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from catalog.settings import PROJECT_ROOT

PROVISION_SCRIPT = PROJECT_ROOT / "deploy" / "superset" / "provision.py"


class SupersetResource(ConfigurableResource):
    """The stack's Superset, provisioned as code through its REST API (``url`` None: none)."""

    url: str | None = None
    python: str = str(PROJECT_ROOT / ".venv-superset" / "bin" / "python")
    timeout_seconds: int = 900

    def reachable(self) -> bool:
        if not self.url:
            return False
        try:
            with urllib.request.urlopen(f"{self.url.rstrip('/')}/health", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def provision(self) -> dict[str, Any]:
        """Run the provisioning; its ids (databases, datasets, charts, dashboards, missing)."""
        if not self.url:
            raise RuntimeError("no Superset configured (SENTINEL_SUPERSET_URL)")
        python = self.python if Path(self.python).exists() else sys.executable
        proc = subprocess.run([python, str(PROVISION_SCRIPT), "--url", self.url, "--json"],
                              cwd=PROJECT_ROOT, env=dict(os.environ), capture_output=True,
                              text=True, timeout=self.timeout_seconds)
        if proc.returncode != 0:
            raise RuntimeError(f"provision.py failed ({proc.returncode}): "
                               f"{proc.stderr[-2000:] or proc.stdout[-2000:]}")
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
