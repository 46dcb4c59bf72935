"""Table statistics straight from a Delta table's ``_delta_log`` (no JVM needed).

Replays the JSON commits: live files (add minus remove), their bytes and ``numRecords`` stats,
the latest version and its commit time. Works on the local disk and on S3/R2 (boto3 client).
When old commits were cleaned up after a checkpoint (parquet, which we do not read here),
``DeltaLogTruncated`` says so and the caller falls back to Spark or reports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LOG_DIR = "_delta_log"


class DeltaLogTruncated(RuntimeError):
    """The log no longer starts at version 0: a checkpoint would be needed to replay it."""


@dataclass(frozen=True)
class DeltaStats:
    """What the UI shows for a table: version, live files, rows, bytes, last commit."""

    exists: bool
    version: int | None = None
    files: int = 0
    rows: int | None = 0
    bytes: int = 0
    last_commit: datetime | None = None

    def metadata(self) -> dict[str, object]:
        return {
            "delta_version": -1 if self.version is None else self.version,
            "files": self.files,
            "rows": -1 if self.rows is None else self.rows,
            "size_bytes": self.bytes,
            "last_commit": self.last_commit.isoformat() if self.last_commit else "never",
        }


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key.rstrip("/")


def _commits(table_path: str, s3_client=None) -> list[tuple[int, bytes]]:
    """(version, JSON text) of every commit file, in version order."""
    found: list[tuple[int, str]] = []
    if s3_client is not None:
        bucket, key = _split_s3(table_path)
        prefix = f"{key}/{LOG_DIR}/"
        pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix):]
                if name.endswith(".json") and name[:-5].isdigit():
                    found.append((int(name[:-5]), obj["Key"]))
        found.sort()
        return [(v, s3_client.get_object(Bucket=bucket, Key=k)["Body"].read()) for v, k in found]
    log_dir = Path(table_path.removeprefix("file://")) / LOG_DIR
    if not log_dir.is_dir():
        return []
    for p in log_dir.iterdir():
        if p.suffix == ".json" and p.stem.isdigit():
            found.append((int(p.stem), str(p)))
    found.sort()
    return [(v, Path(p).read_bytes()) for v, p in found]


def table_stats(table_path: str, *, s3_client=None) -> DeltaStats:
    """Replay the table's log; ``DeltaStats(exists=False)`` when there is no table yet."""
    commits = _commits(table_path, s3_client)
    if not commits:
        return DeltaStats(exists=False, version=None, rows=None)
    if commits[0][0] != 0:
        raise DeltaLogTruncated(f"{table_path}: log starts at version {commits[0][0]}")
    live: dict[str, tuple[int, int | None]] = {}
    last_ts: int | None = None
    for _, body in commits:
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                add = action["add"]
                stats = json.loads(add["stats"]) if add.get("stats") else {}
                live[add["path"]] = (int(add.get("size", 0)), stats.get("numRecords"))
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
            elif "commitInfo" in action and action["commitInfo"].get("timestamp"):
                last_ts = int(action["commitInfo"]["timestamp"])
    counts = [n for _, n in live.values()]
    rows = None if any(n is None for n in counts) else sum(int(n or 0) for n in counts)
    return DeltaStats(
        exists=True,
        version=commits[-1][0],
        files=len(live),
        rows=rows,
        bytes=sum(size for size, _ in live.values()),
        last_commit=datetime.fromtimestamp(last_ts / 1000, UTC) if last_ts else None,
    )
