"""Pure helpers of orchestration: Delta log replay, lease keys, instance config, commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from catalog.writer_lease import LeaseUnavailable, normalize
from orchestration.instance import render
from orchestration.lake.delta_stats import DeltaLogTruncated, table_stats
from orchestration.streams.stream_process import command

pytestmark = pytest.mark.unit


def _commit(log: Path, version: int, *actions: dict) -> None:
    log.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(a) for a in actions]
    (log / f"{version:020d}.json").write_text("\n".join(lines) + "\n")


def _add(path: str, size: int, rows: int | None) -> dict:
    add = {"path": path, "size": size}
    if rows is not None:
        add["stats"] = json.dumps({"numRecords": rows})
    return {"add": add}


def test_delta_stats_replay_adds_and_removes(tmp_path):
    log = tmp_path / "t" / "_delta_log"
    _commit(log, 0, {"commitInfo": {"timestamp": 1_700_000_000_000}}, {"metaData": {}},
            _add("a.parquet", 100, 10), _add("b.parquet", 50, 5))
    _commit(log, 1, {"commitInfo": {"timestamp": 1_700_000_060_000}},
            {"remove": {"path": "a.parquet"}}, {"remove": {"path": "b.parquet"}},
            _add("c.parquet", 120, 15))
    stats = table_stats(str(tmp_path / "t"))
    assert (stats.version, stats.files, stats.rows, stats.bytes) == (1, 1, 15, 120)
    assert stats.last_commit is not None and stats.last_commit.timestamp() == 1_700_000_060
    assert stats.metadata()["delta_version"] == 1


def test_delta_stats_without_table_or_row_stats(tmp_path):
    assert table_stats(str(tmp_path / "missing")).exists is False
    _commit(tmp_path / "t" / "_delta_log", 0, _add("a.parquet", 1, None))
    assert table_stats(str(tmp_path / "t")).rows is None


def test_delta_stats_refuse_a_truncated_log(tmp_path):
    _commit(tmp_path / "t" / "_delta_log", 5, _add("a.parquet", 1, 1))
    with pytest.raises(DeltaLogTruncated):
        table_stats(str(tmp_path / "t"))


def test_lease_keys_ignore_trailing_slash_and_s3_scheme():
    assert normalize("s3://b/t/") == normalize("s3a://b/t") == "s3a://b/t"
    assert normalize("/w/bronze/x/") == "/w/bronze/x"


def test_lease_unavailable_names_the_holder():
    err = LeaseUnavailable("s3a://b/t", 2.0, "stream q1 (backend pid 5)")
    assert "held by stream q1" in str(err) and "2.0s" in str(err)


@pytest.mark.parametrize("storage", ["postgres", "sqlite"])
def test_instance_yaml_limits_runs_and_enables_monitoring(storage, tmp_path):
    doc = yaml.safe_load(render(storage, tmp_path, "postgresql://u:p@h/dagster"))
    assert list(doc["storage"]) == [storage]
    cfg = doc["run_coordinator"]["config"]
    assert cfg["max_concurrent_runs"] >= 2
    assert {"key": "sentinel/kind", "value": "compaction", "limit": 1} in cfg[
        "tag_concurrency_limits"]
    assert doc["run_monitoring"]["enabled"] is True


def test_stream_command_runs_the_streaming_module_with_the_run_id():
    cmd = command(3, "run-123", 1.5)
    assert cmd[:3] == [sys.executable, "-m", "streaming.job"]
    assert cmd[3:] == ["--pipeline-id", "3", "--dagster-run-id", "run-123",
                       "--trigger-seconds", "1.5"]


def test_instance_has_telemetry_and_the_community_dialog_off(tmp_path, monkeypatch):
    """Dagster itself reads the rendered file: no telemetry, no first-visit dialog."""
    from dagster import DagsterInstance

    (tmp_path / "dagster.yaml").write_text(render("sqlite", tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.nux_enabled is False
        assert instance.telemetry_enabled is False
