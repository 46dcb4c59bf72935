"""The Spark driver's JVM class-data archive (AppCDS): faster stream starts and restarts.

Before its first batch a Spark driver loads and verifies thousands of classes (Spark, Scala,
Delta, Kafka, Hadoop). ``python -m streaming.class_archive`` (run by ``make up`` and
``make services``) starts one representative driver that writes them to a dynamic CDS archive
as it exits; every later driver maps the archive instead (``-XX:SharedArchiveFile``), which
shortens each stream (re)start, and so each recovery after a crash, by about a third here
(``bench/README.md``).

The archive's path and the option that maps it are in ``streaming.jvm``. The JVM ignores an
archive it cannot use (``-Xshare:auto``), so the archive can never keep a driver from starting.
``SENTINEL_SPARK_CLASS_ARCHIVE=false`` turns it off.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalog.settings import Settings, get_settings
from streaming.jvm import archive_path
from streaming.processes import owner_alive
from streaming.session import build_session, spark_conf

BUILD_TIMEOUT_SECONDS = 600


def _workload(archive: str) -> None:
    """What a stream driver loads: a Delta session, partitioned appends, a read, and a
    micro-batch query with a Python foreachBatch writing Delta. Prints the JVM's pid."""
    settings = get_settings()
    opts = spark_conf(settings, class_archive=False)["spark.driver.extraJavaOptions"]
    spark = build_session("sentinel-class-archive", settings=settings, shuffle_partitions=2,
                          extra_conf={"spark.driver.extraJavaOptions":
                                      f"{opts} -XX:ArchiveClassesAtExit={archive}"})
    jvm = spark._jvm
    print(f"jvm-pid {jvm.java.lang.ProcessHandle.current().pid()}", flush=True)  # noqa: T201
    with tempfile.TemporaryDirectory(prefix="sentinel-cds-") as tmp:
        table = f"{tmp}/events"
        rows = spark.range(200).selectExpr("id", "cast(id % 3 as string) as day",
                                           "to_json(named_struct('id', id)) as raw")
        for _ in range(2):
            rows.write.format("delta").mode("append").partitionBy("day").save(table)
        spark.read.format("delta").load(table).groupBy("day").count().collect()
        source = f"{tmp}/source"
        rows.write.json(source)

        def sink(df, batch_id: int) -> None:
            df.selectExpr("from_json(raw, 'id long') as e").select("e.id").write \
                .format("delta").mode("append").save(f"{tmp}/sink")

        query = (spark.readStream.schema("id long, day string, raw string").json(source)
                 .writeStream.foreachBatch(sink).trigger(availableNow=True)
                 .option("checkpointLocation", f"{tmp}/checkpoint").start())
        query.awaitTermination(BUILD_TIMEOUT_SECONDS)
    spark.stop()


def build(settings: Settings | None = None, *, quiet: bool = False) -> Path | None:
    """Writes the archive unless it exists; returns its path (None when there is no JVM).

    The driver writes it as its JVM exits, to a temporary name that is renamed once complete:
    a driver never maps a half-written archive, and a second build at once costs time only.
    """
    settings = settings or get_settings()
    say = (lambda *_: None) if quiet else (lambda msg: print(msg, flush=True))  # noqa: T201
    path = archive_path(settings)
    if path is None:
        say("class archive: no java found, skipped")
        return None
    if path.is_file():
        say(f"class archive up to date ({path})")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    started = time.monotonic()
    say("class archive: starting a Spark driver that records the classes it loads (~1 min)")
    proc = subprocess.run([sys.executable, "-m", "streaming.class_archive", "--workload",
                           str(tmp)], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_SECONDS)
    pids = [int(line.split()[1]) for line in proc.stdout.splitlines()
            if line.startswith("jvm-pid ")]
    if proc.returncode != 0 or not pids:
        tmp.unlink(missing_ok=True)
        raise RuntimeError("the class-archive driver failed:\n" + proc.stderr[-3000:])
    deadline = time.monotonic() + BUILD_TIMEOUT_SECONDS
    while owner_alive(pids[0]):  # the JVM writes the archive while it exits
        if time.monotonic() > deadline:
            raise RuntimeError(f"the class-archive JVM (pid {pids[0]}) did not exit")
        time.sleep(0.5)
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise RuntimeError(f"the JVM wrote no archive at {tmp}:\n" + proc.stderr[-3000:])
    os.replace(tmp, path)
    for old in path.parent.glob("spark-driver-*.jsa"):  # archives of other JVMs or jars
        if old != path:
            old.unlink(missing_ok=True)
    size = path.stat().st_size / 2**20
    say(f"class archive written in {time.monotonic() - started:.0f}s: {path} ({size:.0f} MiB)")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", metavar="DUMP_TO", help=argparse.SUPPRESS)
    ap.add_argument("--path", action="store_true", help="print the archive's path and exit")
    args = ap.parse_args(argv)
    if args.workload:
        _workload(args.workload)
        return 0
    settings = get_settings()
    if args.path:
        print(archive_path(settings))  # noqa: T201
        return 0
    try:
        build(settings)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"class archive not built: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
