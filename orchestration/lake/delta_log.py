"""The one reader of a Delta table's ``_delta_log`` (no JVM): on the local disk or S3/R2 (boto3).

``DeltaLog`` lists the log once (file name → modification time) and reads its files; on top of
it: the table's latest version from the listing alone (cheap, no state replay), a commit's text,
and the UTC days a run of commits touched (what the dbt marts must rebuild). The table's state
(live files, rows, bytes) is rebuilt in ``orchestration.lake.delta_stats``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

LOG_DIR = "_delta_log"
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CLASSIC = re.compile(r"^(\d{20})\.checkpoint\.parquet$")
_MULTI = re.compile(r"^(\d{20})\.checkpoint\.(\d{10})\.(\d{10})\.parquet$")
_V2 = re.compile(r"^(\d{20})\.checkpoint\.[0-9a-fA-F-]{36}\.(parquet|json)$")
_ENTRY = re.compile(r"^(\d{20})\.(json|checkpoint\..*)$")  # any commit or checkpoint file
MAX_COMMITS_READ = 500  # more new commits than this in one table: treat every day as touched
_DAY_COLUMNS = ("event_date", "quarantine_date")


def split_s3(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key.rstrip("/")


class DeltaLog:
    """The files of one ``_delta_log`` (name → modification time) and a reader for them."""

    def __init__(self, table_path: str, s3_client=None) -> None:
        self.s3 = s3_client
        self.files: dict[str, float] = {}
        if s3_client is not None:
            self.bucket, key = split_s3(table_path)
            self.prefix = f"{key}/{LOG_DIR}/"
            pages = s3_client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(self.prefix):]
                    if "/" not in name:
                        self.files[name] = obj["LastModified"].timestamp()
        else:
            self.dir = Path(table_path.removeprefix("file://").removeprefix("file:")) / LOG_DIR
            if self.dir.is_dir():
                self.files = {p.name: p.stat().st_mtime for p in self.dir.iterdir()
                              if p.is_file()}

    def read(self, name: str) -> bytes:
        if self.s3 is not None:
            return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
        return (self.dir / name).read_bytes()

    def commits(self) -> dict[int, str]:
        return {int(m[1]): n for n in self.files if (m := _COMMIT.match(n))}

    def checkpoints(self) -> dict[int, list[str]]:
        """version → the file names of one complete checkpoint of that version."""
        found: dict[int, list[str]] = {}
        multi: dict[tuple[int, int], dict[int, str]] = {}
        for name in self.files:
            if m := _CLASSIC.match(name) or _V2.match(name):
                found.setdefault(int(m[1]), [name])
            elif m := _MULTI.match(name):
                multi.setdefault((int(m[1]), int(m[3])), {})[int(m[2])] = name
        for (version, parts), names in multi.items():
            if version not in found and set(names) == set(range(1, parts + 1)):
                found[version] = [names[i] for i in sorted(names)]
        return found

    def latest_version(self) -> int | None:
        """The newest version any commit or checkpoint file names (None: no table here)."""
        versions = [int(m[1]) for n in self.files if (m := _ENTRY.match(n))]
        return max(versions) if versions else None

    def commit(self, version: int) -> str | None:
        """The text of commit ``version`` (None: not in the log any more)."""
        name = f"{version:020d}.json"
        if name not in self.files:
            return None
        return self.read(name).decode()


def is_s3(path: str) -> bool:
    return path.startswith(("s3a://", "s3://"))


def has_commits(path: str, s3_client=None) -> bool:
    """True when the table at ``path`` has a commit in its log (one listing call, not the log)."""
    if s3_client is not None and is_s3(path):
        bucket, key = split_s3(path)
        resp = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{key}/{LOG_DIR}/", MaxKeys=1)
        return bool(resp.get("KeyCount"))
    log_dir = Path(path.removeprefix("file://").removeprefix("file:")) / LOG_DIR
    return log_dir.is_dir() and any(log_dir.glob("*.json"))


def latest_delta_version(path: str, s3_client=None) -> int | None:
    """The newest version in a Delta table's ``_delta_log`` listing (None: no table there).

    Only the file names are read (no state replay): cheap on disk and on S3/R2."""
    return DeltaLog(path, s3_client if is_s3(path) else None).latest_version()


def _days_between(low: str, high: str) -> set[date]:
    first = datetime.fromisoformat(low.replace("Z", "+00:00")).astimezone(UTC).date()
    last = datetime.fromisoformat(high.replace("Z", "+00:00")).astimezone(UTC).date()
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


def commit_days(commit: str) -> set[date] | None:
    """The UTC days whose rows a Delta commit (its JSON lines) added or removed: the files'
    ``event_date``/``quarantine_date`` partition values, else the ``event_time`` range of their
    statistics. Files rewritten without a data change (OPTIMIZE) touch no day; None when a
    changed file tells neither (its days are unknown)."""
    days: set[date] = set()
    for line in commit.splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        file = action.get("add") or action.get("remove")
        if not file or file.get("dataChange") is False:
            continue
        values = file.get("partitionValues") or {}
        found = [values[c] for c in _DAY_COLUMNS if values.get(c)]
        if found:
            days |= {date.fromisoformat(v) for v in found}
            continue
        stats = json.loads(file["stats"]) if file.get("stats") else {}
        low = (stats.get("minValues") or {}).get("event_time")
        high = (stats.get("maxValues") or {}).get("event_time")
        if stats.get("numRecords") == 0:
            continue
        if not (low and high):
            return None
        days |= _days_between(low, high)
    return days


def touched_days(path: str, since: int | None, latest: int, s3_client=None) -> set[date] | None:
    """The days the commits ``since`` (exclusive; None: from the first) .. ``latest`` of a
    Delta table touched; None when unknown (a commit no longer in the log, or too many)."""
    first = 0 if since is None else since + 1
    if latest - first + 1 > MAX_COMMITS_READ:
        return None
    log = DeltaLog(path, s3_client if is_s3(path) else None)
    days: set[date] = set()
    for version in range(first, latest + 1):
        commit = log.commit(version)
        found = commit_days(commit) if commit is not None else None
        if found is None:
            return None
        days |= found
    return days

