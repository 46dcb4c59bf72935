"""Table statistics straight from a Delta table's ``_delta_log`` (no JVM needed).

Live files (add minus remove), their bytes and ``numRecords`` stats, the version and its commit
time. Works on the local disk and on S3/R2 (boto3 client).

The log is read as the Delta protocol describes: the newest complete checkpoint at or before
the wanted version (a classic ``<v>.checkpoint.parquet``, a multi-part
``<v>.checkpoint.<i>.<n>.parquet`` set, or a V2 ``<v>.checkpoint.<uuid>.parquet|json`` with
its ``_sidecars/``) gives the table's state at that version, read with pyarrow; the JSON commits
after it are replayed on top. Checkpoints are found by listing the log (``_last_checkpoint`` is
only a hint and can lag behind), so the stats stay right after Delta's log cleanup removed the
JSON commits older than a checkpoint. ``DeltaLogTruncated`` is raised only when neither a
checkpoint nor an unbroken run of commits from version 0 can rebuild the wanted version.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestration.lake.delta_log import DeltaLog, split_s3

SIDECARS = "_sidecars"


class DeltaLogTruncated(RuntimeError):
    """Neither a checkpoint nor the commits from version 0 can rebuild the wanted version."""


@dataclass(frozen=True)
class DeltaStats:
    """What the UI shows for a table: version, live files, rows, bytes, last commit."""

    exists: bool
    version: int | None = None
    files: int = 0
    rows: int | None = 0
    bytes: int = 0
    last_commit: datetime | None = None
    checkpoint_version: int | None = None  # the checkpoint the state was rebuilt from, if any

    def metadata(self) -> dict[str, object]:
        return {
            "delta_version": -1 if self.version is None else self.version,
            "files": self.files,
            "rows": -1 if self.rows is None else self.rows,
            "size_bytes": self.bytes,
            "last_commit": self.last_commit.isoformat() if self.last_commit else "never",
        }


def _parquet_rows(data: bytes, wanted: Iterable[str]) -> dict[str, list[Any]]:
    """The wanted top-level columns of a parquet file as Python values (absent → [])."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(io.BytesIO(data))
    columns = [c for c in wanted if c in pf.schema_arrow.names]
    if not columns:
        return {}
    table = pf.read(columns=columns)
    return {c: table.column(c).to_pylist() for c in columns}


def _checkpoint_actions(log: DeltaLog, names: list[str]) -> Iterable[dict[str, Any]]:
    """The ``add`` actions (as dicts) of a checkpoint, following V2 sidecars."""
    sidecars: list[str] = []
    for name in names:
        if name.endswith(".json"):  # V2 checkpoint in JSON form
            for line in log.read(name).decode().splitlines():
                if line.strip():
                    action = json.loads(line)
                    if "add" in action:
                        yield {"add": action["add"]}
                    elif "sidecar" in action:
                        sidecars.append(action["sidecar"]["path"])
            continue
        cols = _parquet_rows(log.read(name), ("add", "sidecar"))
        for add in cols.get("add", []):
            if add is not None:
                yield {"add": add}
        sidecars += [s["path"] for s in cols.get("sidecar", []) if s is not None]
    for path in sidecars:
        name = path.rsplit("/", 1)[-1]
        data = log.read(f"{SIDECARS}/{name}") if "://" not in path else _read_uri(log, path)
        for add in _parquet_rows(data, ("add",)).get("add", []):
            if add is not None:
                yield {"add": add}


def _read_uri(log: DeltaLog, uri: str) -> bytes:
    if log.s3 is not None:
        bucket, key = split_s3(uri)
        return log.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return Path(uri.removeprefix("file://").removeprefix("file:")).read_bytes()


def _num_records(add: dict[str, Any]) -> int | None:
    if add.get("stats"):
        n = json.loads(add["stats"]).get("numRecords")
        return None if n is None else int(n)
    parsed = add.get("stats_parsed")  # checkpoints written with writeStatsAsStruct only
    if isinstance(parsed, dict) and parsed.get("numRecords") is not None:
        return int(parsed["numRecords"])
    return None


def table_stats(table_path: str, *, s3_client=None, version: int | None = None) -> DeltaStats:
    """The table's state at ``version`` (default: the latest); ``exists=False`` when no table.

    Rebuilt from the newest complete checkpoint at or before that version plus the JSON
    commits after it, or from all commits when the log still starts at version 0.
    """
    log = DeltaLog(table_path, s3_client)
    commits, checkpoints = log.commits(), log.checkpoints()
    if not commits and not checkpoints:
        return DeltaStats(exists=False, version=None, rows=None)
    latest = max([*commits, *checkpoints])
    target = latest if version is None else version
    if target > latest or target < 0:
        raise ValueError(f"{table_path}: no version {target} (latest is {latest})")
    usable = [v for v in checkpoints if v <= target]
    start = max(usable) if usable else None
    first = (start + 1) if start is not None else 0
    missing = [v for v in range(first, target + 1) if v not in commits]
    if missing:
        where = f"checkpoint {start}" if start is not None else "version 0"
        raise DeltaLogTruncated(
            f"{table_path}: cannot rebuild version {target} from {where}: "
            f"commit {missing[0]} is missing (log starts at {min(commits, default=latest)})")

    live: dict[str, tuple[int, int | None]] = {}
    if start is not None:
        for action in _checkpoint_actions(log, checkpoints[start]):
            add = action["add"]
            live[add["path"]] = (int(add.get("size") or 0), _num_records(add))
    last_ts: float | None = None
    # The commit time of the checkpoint's own version, when its JSON commit is still there.
    replay = range(first - 1 if start is not None and start in commits else first, target + 1)
    for v in replay:
        for line in log.read(commits[v]).decode().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if v < first:  # the checkpoint's own commit: its time only
                if "commitInfo" in action and action["commitInfo"].get("timestamp"):
                    last_ts = action["commitInfo"]["timestamp"] / 1000
                continue
            if "add" in action:
                add = action["add"]
                live[add["path"]] = (int(add.get("size", 0)), _num_records(add))
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
            elif "commitInfo" in action and action["commitInfo"].get("timestamp"):
                last_ts = action["commitInfo"]["timestamp"] / 1000
    if last_ts is None and start is not None:
        # Every commit up to the checkpoint is gone: Delta's fallback, the file's own time.
        last_ts = max(log.files[n] for n in checkpoints[start])
    counts = [n for _, n in live.values()]
    rows = None if any(n is None for n in counts) else sum(int(n or 0) for n in counts)
    return DeltaStats(
        exists=True,
        version=target,
        files=len(live),
        rows=rows,
        bytes=sum(size for size, _ in live.values()),
        last_commit=datetime.fromtimestamp(last_ts, UTC) if last_ts else None,
        checkpoint_version=start,
    )
