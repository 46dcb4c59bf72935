"""`make bench`: throughput and rule scaling, latency, API — one table and one JSON file.

    .venv/bin/python -m bench.run                 # a few minutes
    .venv/bin/python -m bench.run --full          # longer runs, 500 rules, bigger backlog

Throughput first (engine vs floor vs the seed's way on the same backlog, same Spark session);
latency then runs at 25/50/80 % of the engine's measured events/s with 50 rules; the API last.
Writes bench/results/bench-<timestamp>.json. Needs `make services`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, machine, save
from bench.concurrency import print_table as print_concurrency
from bench.latency import print_table
from bench.storage import print_table as print_storage


def module(name: str, *args: str, check: bool = True) -> Any:
    """Runs ``python -m bench.<name>`` in its own process (own Spark JVM) and reads its JSON
    (``check=False``: also when it exits non-zero, e.g. a concurrency level that failed)."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [sys.executable, "-m", f"bench.{name}", *args, "--json", str(out)]
    print(f"\n$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=check)
    return json.loads(out.read_text())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    info = machine()
    rules = ["1", "10", "50", "100", "500"] if args.full else ["1", "10", "50", "100"]
    throughput = module("throughput", "--batch", "100000" if args.full else "50000",
                        "--batches", "3" if args.full else "2", "--rules", *rules,
                        "--skip-seed-above", "100" if args.full else "50")
    engine = {r["rules"]: r["events_per_s"] for r in throughput if r["variant"] == "engine"}
    seed = {r["rules"]: r["events_per_s"] for r in throughput if r["variant"] == "seed"}
    floor = next(r["events_per_s"] for r in throughput if r["variant"] == "floor")
    sustainable = engine[50]
    latency = module("latency", "--sustainable", str(sustainable),
                     "--seconds", "120" if args.full else "40")
    api = module("api_load", "--seconds", "30" if args.full else "10")
    storage = module("storage", *(["--batches", "150"] if args.full else []))
    # Ten stream processes take ~10 minutes to start on 2 cores: the long form only, both
    # designs (one Spark application per pipeline, and all queries in one application).
    concurrency = None
    if args.full:
        levels = []
        for mode in ("shared", "process"):
            levels += module("concurrency", "--mode", mode, "--pipelines", "1", "3", "10",
                             "--seconds", "180", check=False)["levels"]
        concurrency = {"levels": levels}

    print(f"\nmachine: {info}")
    print(f"\n{'rules':>6} {'engine ev/s':>12} {'seed ev/s':>10} {'ours/seed':>10} "
          f"{'ours/floor':>10}   (floor {floor:,.0f} ev/s)")
    for k, eps in engine.items():
        s = seed.get(k)
        ratio = f"{eps / s:9.1f}x" if s else f"{'-':>10}"
        print(f"{k:>6} {eps:12,.0f} {s or 0:10,.0f} {ratio} {eps / floor:9.2f}x")
    print_table(latency)
    print(f"\n{'API operation':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in api:
        print(f"{r['op']:<28} {r['rps']:8.0f} {r['p50']:8.1f} {r['p99']:8.1f} {r['errors']:7d}")
    print_storage(storage)
    if concurrency is not None:
        print_concurrency(concurrency["levels"])
    path = save("bench", {"machine": info, "full": args.full, "throughput": throughput,
                          "latency": latency, "api": api, "storage": storage,
                          "concurrency": concurrency})
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
