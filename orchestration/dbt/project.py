"""The dbt project ``lakehouse_models``: where it is, its dbt executable, its manifest.

The manifest is built at load time with ``dbt parse`` when it is missing or older than the
project's files (``dagster dev`` re-parses through ``prepare_if_dev``).
"""

import fcntl
import os
import shutil
import sys
import tempfile
from pathlib import Path

from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
)

from catalog.settings import PROJECT_ROOT

PROJECT_DIR = PROJECT_ROOT / "lakehouse_models"
GROUP = "lakehouse_models"


def _find_dbt() -> str:
    """The venv's dbt even when the venv is not activated (dagster started by path, or a code
    server whose interpreter path points outside the venv)."""
    candidates = [
        Path(sys.executable).with_name("dbt"),
        Path(sys.prefix) / "bin" / "dbt",
        PROJECT_ROOT / ".venv" / "bin" / "dbt",
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return shutil.which("dbt") or "dbt"


DBT_EXECUTABLE = _find_dbt()


lakehouse_project = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR)


def _manifest_is_stale() -> bool:
    manifest = lakehouse_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [p for ext in ("*.sql", "*.yml") for p in PROJECT_DIR.rglob(ext)
               if "target" not in p.parts]
    return any(p.stat().st_mtime > built for p in sources)


def ensure_manifest() -> Path:
    """``target/manifest.json`` of the project, parsed again when stale.

    Several processes load the definitions at once (the webserver's and the daemon's code
    servers, run workers): one parses at a time (a file lock), into a target of its own, and
    the manifest replaces the old one in one rename, so no reader meets a half-written file.
    (Not ``prepare_if_dev()``: it runs a bare ``dbt`` from PATH, which a venv that is not
    activated does not have.)"""
    manifest = lakehouse_project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest.parent / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _manifest_is_stale():
            with tempfile.TemporaryDirectory(dir=manifest.parent, prefix=".parse-") as target:
                DbtCliResource(project_dir=lakehouse_project, dbt_executable=DBT_EXECUTABLE).cli(
                    ["parse", "--quiet"], target_path=Path(target),
                ).wait()
                os.replace(Path(target) / "manifest.json", manifest)
    return manifest


class SentinelDbtTranslator(DagsterDbtTranslator):
    """Models in one group; tests as asset checks (the default in dagster-dbt 0.29)."""

    def get_group_name(self, dbt_resource_props):  # type: ignore[override]
        if dbt_resource_props.get("resource_type") == "source":
            return super().get_group_name(dbt_resource_props)
        return GROUP


TRANSLATOR = SentinelDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def dbt_resource() -> DbtCliResource:
    """The ``dbt`` resource the assets need (add under ``resources={"dbt": ...}``)."""
    return DbtCliResource(project_dir=lakehouse_project, profiles_dir=str(PROJECT_DIR),
                          dbt_executable=DBT_EXECUTABLE)
