"""Delta maintenance of one table: OPTIMIZE (bin-pack or Z-order) then VACUUM, under the lease.

Streams append many small files (one per partition per micro-batch); compaction rewrites them
into few large ones so scans stay fast, and VACUUM deletes the files no version within the
retention still needs. Both commit to the table's log, so both run inside the table's writer
lease (``catalog.writer_lease``): never concurrently with the stream's commits on S3/R2.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from catalog.writer_lease import LeaseUnavailable, writer_lease

log = logging.getLogger(__name__)


@dataclass
class CompactionResult:
    """What one table's maintenance did (reported as asset metadata)."""

    table: str
    status: str  # compacted | skipped
    files_before: int = 0
    files_after: int = 0
    files_removed_by_optimize: int = 0
    files_added_by_optimize: int = 0
    version_before: int = -1
    version_after: int = -1
    zorder_by: str = ""
    seconds: float = 0.0
    message: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _detail(spark, path: str) -> tuple[int, int]:
    from delta.tables import DeltaTable

    d = DeltaTable.forPath(spark, path).detail().select("numFiles").first()
    version = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(d["numFiles"] or 0), int(version["version"]) if version else -1


def compact_table(
    spark,
    path: str,
    *,
    zorder_by: str | None = None,
    retention_hours: float = 168.0,
    lease_timeout: float = 60.0,
    owner: str = "compaction",
) -> CompactionResult:
    """OPTIMIZE + VACUUM ``path`` while holding its writer lease; skip when it stays busy."""
    from delta.tables import DeltaTable

    result = CompactionResult(table=path, status="skipped", zorder_by=zorder_by or "")
    if not DeltaTable.isDeltaTable(spark, path):
        result.message = "no Delta table yet"
        return result
    started = time.monotonic()
    try:
        with writer_lease(path, owner=owner, timeout=lease_timeout):
            result.files_before, result.version_before = _detail(spark, path)
            table = DeltaTable.forPath(spark, path)
            builder = table.optimize()
            metrics = (builder.executeZOrderBy(zorder_by) if zorder_by
                       else builder.executeCompaction()).select("metrics").first()
            if metrics is not None:
                m = metrics["metrics"]
                result.files_removed_by_optimize = int(m["numFilesRemoved"] or 0)
                result.files_added_by_optimize = int(m["numFilesAdded"] or 0)
            table.vacuum(retention_hours)
            result.files_after, result.version_after = _detail(spark, path)
    except LeaseUnavailable as exc:
        result.message = str(exc)
        log.warning("compaction of %s %s", path, result.message)
        return result
    result.status = "compacted"
    result.seconds = round(time.monotonic() - started, 2)
    result.message = (f"{result.files_before} -> {result.files_after} files, "
                      f"retention {retention_hours}h")
    return result
