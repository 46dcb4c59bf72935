"""The Spark driver's JVM: the ``java`` pyspark launches, the stack's jars, and the option that
maps the class-data archive (built by ``python -m streaming.class_archive``) when it exists.

The archive belongs to one JVM and one set of jars: its file name carries a hash of both, so a
new JDK or a changed jar means a new archive, and until it is built drivers start without one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pyspark

from catalog.settings import Settings
from streaming.velocity_jar import built_jar


def spark_jars(settings: Settings) -> list[str]:
    """The jars of the local stack (Delta, Kafka connector, hadoop-aws, JDBC), sorted, then
    the velocity processors' jar when it is built (``streaming.velocity_jar``)."""
    jar_dir = Path(settings.jars_dir) / "spark"
    jars = sorted(str(p) for p in jar_dir.glob("*.jar")) if jar_dir.is_dir() else []
    velocity = built_jar(settings)
    return jars + [str(velocity)] if velocity is not None else jars



def java_executable() -> Path | None:
    """The ``java`` pyspark launches: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None



def _jar_files(settings: Settings) -> list[Path]:
    own = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    return own + [Path(p) for p in spark_jars(settings)]



def archive_path(settings: Settings) -> Path | None:
    """Where the archive of this JVM and these jars lives (None without a JVM)."""
    java = java_executable()
    if java is None:
        return None
    digest = hashlib.sha256()
    for f in [java, *_jar_files(settings)]:
        stat = f.stat()
        digest.update(f"{f}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return Path(settings.home) / "cds" / f"spark-driver-{digest.hexdigest()[:16]}.jsa"



def java_options(settings: Settings) -> str:
    """The driver JVM option that maps the archive, or "" (disabled, or not built yet)."""
    if not settings.spark_class_archive:
        return ""
    path = archive_path(settings)
    return f"-XX:SharedArchiveFile={path}" if path is not None and path.is_file() else ""
