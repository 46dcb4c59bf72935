"""Files and bytes per event day from a Delta log's actions and from the table's directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.common import delta_log_actions, disk_files_by_partition, files_by_partition

pytestmark = pytest.mark.unit


def add(path: str, day: str | None, size: int) -> dict:
    values = {} if day is None else {"event_date": day}
    return {"add": {"path": path, "partitionValues": values, "size": size}}


def remove(path: str) -> dict:
    return {"remove": {"path": path, "deletionTimestamp": 1}}


def test_live_files_per_day_after_a_compaction_replaced_some() -> None:
    actions = [
        {"commitInfo": {"operation": "WRITE"}},
        add("d1/a", "2026-03-01", 100), add("d1/b", "2026-03-01", 50),
        add("d2/c", "2026-03-02", 70),
        {"commitInfo": {"operation": "OPTIMIZE"}},
        remove("d1/a"), remove("d1/b"), add("d1/ab", "2026-03-01", 120),
    ]
    assert files_by_partition(actions, "event_date") == {
        "2026-03-01": {"files": 1, "bytes": 120},
        "2026-03-02": {"files": 1, "bytes": 70},
    }


def test_a_file_added_again_counts_once_and_unpartitioned_files_are_grouped() -> None:
    actions = [add("x", None, 5), add("x", None, 5), add("y", "2026-03-01", 1), remove("y"),
               remove("never-added")]
    assert files_by_partition(actions, "event_date") == {"?": {"files": 1, "bytes": 5}}


def test_log_actions_in_version_order_and_a_gap_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    (log / f"{1:020d}.json").write_text(json.dumps(remove("a")) + "\n")
    (log / f"{0:020d}.json").write_text(json.dumps(add("a", "d", 1)) + "\n\n"
                                        + json.dumps(add("b", "d", 2)) + "\n")
    (log / f"{1:020d}.checkpoint.parquet").write_bytes(b"ignored")
    actions = delta_log_actions(str(tmp_path / "t"))
    assert actions == [add("a", "d", 1), add("b", "d", 2), remove("a")]
    (log / f"{3:020d}.json").write_text(json.dumps(add("c", "d", 3)) + "\n")
    with pytest.raises(RuntimeError, match="gaps"):
        delta_log_actions(str(tmp_path / "t"))


def test_disk_files_per_partition_directory(tmp_path: Path) -> None:
    for day, sizes in {"2026-03-01": [3, 4], "2026-03-02": [10]}.items():
        part = tmp_path / f"event_date={day}"
        part.mkdir()
        for i, size in enumerate(sizes):
            (part / f"part-{i}.parquet").write_bytes(b"x" * size)
        (part / ".part-0.parquet.crc").write_bytes(b"crc")
    (tmp_path / "_delta_log").mkdir()
    assert disk_files_by_partition(str(tmp_path), "event_date") == {
        "2026-03-01": {"files": 2, "bytes": 7}, "2026-03-02": {"files": 1, "bytes": 10}}
