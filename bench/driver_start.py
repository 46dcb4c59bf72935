"""Cold start of a Spark driver with and without the class-data archive (streaming.class_archive).

Each run is a fresh process, as a stream start or a restart after a crash: create the Delta
session, append a partitioned Delta table, read it back. Runs alternate between the archive
(the default) and ``SENTINEL_SPARK_CLASS_ARCHIVE=false`` so that both see the same machine.

    python -m bench.driver_start [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, save
from catalog.settings import get_settings
from streaming import class_archive

ROOT = Path(__file__).resolve().parents[1]
DRIVER = """
import sys, time
t0 = time.monotonic()
from streaming.session import build_session
spark = build_session("bench-driver-start", shuffle_partitions=2)
t1 = time.monotonic()
rows = spark.range(1000).selectExpr("id", "cast(id % 3 as string) as day")
rows.write.format("delta").partitionBy("day").save(sys.argv[1])
assert spark.read.format("delta").load(sys.argv[1]).count() == 1000
print(f"session {t1 - t0:.2f} first-write {time.monotonic() - t1:.2f}")
"""


def one_run(archive: bool) -> dict[str, float]:
    env = {**os.environ, "SENTINEL_SPARK_CLASS_ARCHIVE": str(archive).lower()}
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", DRIVER, f"{tmp}/t"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
        total = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    line = proc.stdout.strip().splitlines()[-1].split()
    return {"session_s": float(line[1]), "first_write_s": float(line[3]), "total_s": total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    path = class_archive.build(get_settings())
    if path is None:
        print("no java: nothing to measure")
        return 1
    info = machine()
    runs: dict[str, list[dict[str, float]]] = {"archive": [], "none": []}
    for i in range(args.runs):
        for name, archive in (("archive", True), ("none", False)):
            r = one_run(archive)
            runs[name].append(r)
            print(f"run {i + 1} {name:8s} session {r['session_s']:5.1f}s "
                  f"first write {r['first_write_s']:5.1f}s total {r['total_s']:5.1f}s")
    med = {name: sorted(r["total_s"] for r in rs)[len(rs) // 2] for name, rs in runs.items()}
    print(f"median start-to-first-commit: archive {med['archive']:.1f}s, none {med['none']:.1f}s "
          f"(archive/none {med['archive'] / med['none']:.2f})")
    saved = save("driver_start", {"machine": info, "runs": runs, "median_total_s": med,
                                  "archive": str(path)})
    print(f"results: {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
