"""deploy/spark/thrift_conf.py writes the Thrift Server's conf without leaking secrets."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

import pytest

from catalog.settings import get_settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


def load_module():
    spec = importlib.util.spec_from_file_location("thrift_conf",
                                                  ROOT / "deploy" / "spark" / "thrift_conf.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conf_dir_has_metastore_port_delta_and_private_s3_secret(tmp_path, monkeypatch,
                                                                  capsys) -> None:
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SENTINEL_WAREHOUSE", raising=False)
    monkeypatch.setenv("SENTINEL_S3_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("SENTINEL_S3_SECRET_ACCESS_KEY", "very-secret-value")
    monkeypatch.setenv("SENTINEL_S3_ENDPOINT", "http://127.0.0.1:9000")
    get_settings.cache_clear()
    try:
        module = load_module()
        conf_dir = tmp_path / "conf"
        assert module.main([str(conf_dir), "--port", "10123"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "very-secret-value" not in out
    defaults = conf_dir / "spark-defaults.conf"
    assert stat.S_IMODE(defaults.stat().st_mode) == 0o600
    text = defaults.read_text()
    assert "spark.sql.extensions io.delta.sql.DeltaSparkSessionExtension" in text
    assert "spark.sql.catalogImplementation hive" in text
    assert "spark.sql.warehouse.dir s3a://sentinel/gold" in text
    assert "spark.hadoop.fs.s3a.secret.key very-secret-value" in text
    static = module.read_static(ROOT / "deploy" / "spark" / "thrift-server.conf")
    assert f"spark.driver.memory {static['spark.driver.memory']}" in text
    assert "\nspark.jars " not in text  # local master: jars on the driver classpath instead
    hive = (conf_dir / "hive-site.xml").read_text()
    assert "<name>hive.server2.thrift.port</name><value>10123</value>" in hive
    assert "<name>hive.server2.thrift.bind.host</name><value>127.0.0.1</value>" in hive
    metastore = tmp_path / "home" / "metastore" / "metastore_db"
    assert f"jdbc:derby:;databaseName={metastore};create=true" in hive
