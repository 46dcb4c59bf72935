"""A Spark driver maps the class-data archive that ``make services`` built.

The driver runs with ``-Xshare:on``, under which the JVM refuses to start when the archive does
not fit its JDK and classpath (instead of quietly starting without it, as in production).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.settings import get_settings
from streaming import class_archive

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DRIVER = """
import sys
from streaming.session import build_session
spark = build_session("it-class-archive")
print(spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"))
spark.range(5).write.format("delta").save(sys.argv[1])
print(spark.read.format("delta").load(sys.argv[1]).count())
"""


def test_a_driver_starts_on_the_archive(tmp_path: Path) -> None:
    path = class_archive.build(get_settings(), quiet=True)  # built already by make services
    assert path is not None and path.is_file()
    env = {**os.environ, "JAVA_TOOL_OPTIONS": "-Xshare:on", "PYTHONUNBUFFERED": "1"}
    env.pop("SENTINEL_SPARK_CLASS_ARCHIVE", None)
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "table")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    opts, count = proc.stdout.strip().splitlines()[-2:]
    assert f"-XX:SharedArchiveFile={path}" in opts.split()
    assert count == "5"
