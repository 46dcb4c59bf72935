"""The velocity query's compiled stateful processors (``jvm/velocity``, Java): built into a jar
that Spark drivers put on their classpath (``streaming.jvm.spark_jars``).

``python -m streaming.velocity_jar`` (run by ``make jars``, so by ``make up``/``make services``)
compiles the sources with ``javac`` against pyspark's own jars and writes
``<jars_dir>/sentinel/velocity-<hash>.jar``; the hash covers the sources and the pyspark
version, so a changed source or a new Spark means a new jar, and a jar that exists is never
built again. Without a JDK it only says so: the velocity query then runs its Python processors
(``SENTINEL_VELOCITY_ENGINE``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pyspark

from catalog.settings import Settings, get_settings

SOURCES = Path(__file__).resolve().parents[1] / "jvm" / "velocity" / "src" / "main" / "java"
MAIN_CLASS = "io.sentinel.velocity.Steps"


def _sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def source_hash() -> str:
    """A hash of the Java sources and the pyspark version they are compiled against."""
    digest = hashlib.sha256(pyspark.__version__.encode())
    for f in _sources():
        digest.update(f"\0{f.relative_to(SOURCES)}\0".encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def jar_path(settings: Settings) -> Path:
    """Where the jar of these sources lives (it may not be built yet)."""
    return Path(settings.jars_dir) / "sentinel" / f"velocity-{source_hash()}.jar"


def built_jar(settings: Settings) -> Path | None:
    """The jar of these sources when it is built, else None."""
    path = jar_path(settings)
    return path if path.is_file() else None


def javac() -> str | None:
    """``$JAVA_HOME/bin/javac``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "javac") if home else shutil.which("javac")
    return found if found and Path(found).exists() else None


def build(settings: Settings | None = None, *, quiet: bool = False) -> Path | None:
    """Builds the jar unless it exists; returns its path (None without a JDK).

    Compiled in a temporary directory and renamed into place once complete: a driver never
    sees a half-written jar, and two builds at once cost time only.
    """
    settings = settings or get_settings()
    say = (lambda *_: None) if quiet else (lambda msg: print(msg, flush=True))  # noqa: T201
    path = jar_path(settings)
    if path.is_file():
        say(f"velocity jar up to date ({path})")
        return path
    compiler = javac()
    if compiler is None:
        say("velocity jar: no javac (a JDK) found, skipped; velocity rules run in Python")
        return None
    started = time.monotonic()
    classpath = str(Path(pyspark.__file__).parent / "jars" / "*")
    say(f"velocity jar: compiling {len(_sources())} Java sources with {compiler}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sentinel-velocity-jar-") as tmp:
        classes = Path(tmp) / "classes"
        done = subprocess.run(
            [compiler, "-nowarn", "-Xlint:-path", "--release", "17", "-encoding", "UTF-8",
             "-cp", classpath, "-d", str(classes), *map(str, _sources())],
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"javac failed:\n{done.stderr[-4000:]}")
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
            for f in sorted(classes.rglob("*.class")):
                jar.write(f, str(f.relative_to(classes)))
        partial.replace(path)
    say(f"velocity jar built in {time.monotonic() - started:.1f} s ({path})")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--print-path", action="store_true",
                    help="print where the jar of these sources lives and exit")
    args = ap.parse_args(argv)
    if args.print_path:
        print(jar_path(get_settings()))  # noqa: T201
        return 0
    try:
        build(quiet=args.quiet)
    except RuntimeError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
