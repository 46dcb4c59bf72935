"""``table_stats`` over hand-made checkpoints: choice of checkpoint, multi-part sets, gaps."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.lake.delta_stats import DeltaLogTruncated, table_stats

pytestmark = pytest.mark.unit

ADD = pa.struct([("path", pa.string()), ("size", pa.int64()), ("stats", pa.string())])


def _checkpoint(path: Path, adds: list[tuple[str, int, int]]) -> None:
    rows = [{"path": p, "size": s, "stats": json.dumps({"numRecords": n})} for p, s, n in adds]
    # Real checkpoints hold one action per row: the other rows' ``add`` is null.
    table = pa.table({"add": pa.array([*rows, None], ADD),
                      "metaData": pa.array([None, *([None] * len(rows))],
                                           pa.struct([("id", pa.string())]))})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _commit(log: Path, version: int, *actions: dict) -> None:
    log.mkdir(parents=True, exist_ok=True)
    (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def _add(path: str, size: int, rows: int) -> dict:
    return {"add": {"path": path, "size": size, "stats": json.dumps({"numRecords": rows})}}


def test_checkpoint_then_later_commits(tmp_path):
    log = tmp_path / "t" / "_delta_log"
    _checkpoint(log / f"{4:020d}.checkpoint.parquet", [("a", 10, 1), ("b", 20, 2)])
    _commit(log, 5, {"commitInfo": {"timestamp": 1_700_000_000_000}},
            {"remove": {"path": "a"}}, _add("c", 30, 3))
    stats = table_stats(str(tmp_path / "t"))
    assert (stats.version, stats.files, stats.rows, stats.bytes) == (5, 2, 5, 50)
    assert stats.checkpoint_version == 4
    assert stats.last_commit is not None and stats.last_commit.timestamp() == 1_700_000_000
    at4 = table_stats(str(tmp_path / "t"), version=4)  # the checkpoint alone
    assert (at4.version, at4.files, at4.rows) == (4, 2, 3)
    assert at4.last_commit is not None  # the checkpoint file's own time


def test_incomplete_multi_part_checkpoint_is_not_used(tmp_path):
    log = tmp_path / "t" / "_delta_log"
    _checkpoint(log / f"{2:020d}.checkpoint.{1:010d}.{2:010d}.parquet", [("a", 1, 1)])
    _checkpoint(log / f"{2:020d}.checkpoint.{2:010d}.{2:010d}.parquet", [("b", 1, 1)])
    _checkpoint(log / f"{4:020d}.checkpoint.{1:010d}.{2:010d}.parquet", [("x", 1, 1)])
    _commit(log, 3, _add("c", 1, 1))
    _commit(log, 4, _add("d", 1, 1))
    stats = table_stats(str(tmp_path / "t"))  # part 2 of 2 at v4 is missing: use v2 + 3, 4
    assert (stats.version, stats.files, stats.rows, stats.checkpoint_version) == (4, 4, 4, 2)


def test_a_gap_after_the_checkpoint_is_refused(tmp_path):
    log = tmp_path / "t" / "_delta_log"
    _checkpoint(log / f"{2:020d}.checkpoint.parquet", [("a", 1, 1)])
    _commit(log, 4, _add("c", 1, 1))
    with pytest.raises(DeltaLogTruncated, match="commit 3 is missing"):
        table_stats(str(tmp_path / "t"))
    with pytest.raises(ValueError):
        table_stats(str(tmp_path / "t"), version=9)
