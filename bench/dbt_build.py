"""Time of a full ``dbt build`` of the marts at dbt-spark's poll interval against ours.

dbt-spark submits each statement asynchronously and asks for its state every ``poll_interval``
seconds: at its default (5 s) a statement that takes 0.5 s costs 5 s. Runs alternate between
``SENTINEL_DBT_POLL_INTERVAL=5`` and the profile's 1 s so that both see the same machine and the
same lake. Needs the running stack (``make up``: the Thrift Server and the demo pipeline's
tables); it rebuilds the stack's own marts, as the hourly schedule does.

    python -m bench.dbt_build [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, save
from orchestration.lake.registration import register_all

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "lakehouse_models"
INTERVALS = {"dbt-spark default (5 s)": 5, "ours (1 s)": 1}


def one_build(poll: int) -> dict[str, float]:
    """One ``dbt build`` of every model and test; its wall time and node count."""
    dbt = Path(sys.executable).with_name("dbt")
    env = {**os.environ, "SENTINEL_DBT_POLL_INTERVAL": str(poll),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    with tempfile.TemporaryDirectory(prefix="bench-dbt-") as tmp:
        started = time.monotonic()
        proc = subprocess.run(
            [str(dbt), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
             "--target-path", f"{tmp}/target", "--log-path", f"{tmp}/logs"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"dbt build failed (poll {poll} s):\n{proc.stdout[-4000:]}")
        results = json.loads(Path(f"{tmp}/target/run_results.json").read_text())["results"]
    return {"wall_s": round(wall, 1), "nodes": len(results),
            "node_s_sum": round(sum(r["execution_time"] for r in results), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args(argv)
    print(f"lakehouse tables: {register_all().summary()}")
    info = machine()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in INTERVALS}
    for i in range(args.runs):
        for name, poll in INTERVALS.items():
            r = one_build(poll)
            runs[name].append(r)
            print(f"run {i + 1} {name:24s} {r['nodes']} nodes in {r['wall_s']:6.1f} s "
                  f"(node time summed {r['node_s_sum']:.1f} s)")
    med = {name: sorted(r["wall_s"] for r in rs)[len(rs) // 2] for name, rs in runs.items()}
    default, ours = med["dbt-spark default (5 s)"], med["ours (1 s)"]
    print(f"median build: default {default:.1f} s, ours {ours:.1f} s "
          f"(ours/default {ours / default:.2f})")
    saved = save("dbt_build", {"machine": info, "runs": runs, "median_wall_s": med})
    print(f"results: {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
