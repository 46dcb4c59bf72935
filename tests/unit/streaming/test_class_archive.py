"""The driver's class-data archive: which JVM option a driver gets, and when it changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.settings import Settings
from streaming import class_archive, jvm
from streaming.session import spark_conf

pytestmark = pytest.mark.unit

def settings_in(home: Path, **kw) -> Settings:
    return Settings(_env_file=None, home=home, **kw)


def java_opts(settings: Settings, **kw) -> str:
    return str(spark_conf(settings, **kw)["spark.driver.extraJavaOptions"])


def test_a_driver_maps_the_archive_only_once_it_exists(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    path = jvm.archive_path(settings)
    assert path is not None and path.parent == tmp_path / "cds"
    assert "SharedArchiveFile" not in java_opts(settings)
    path.parent.mkdir()
    path.write_bytes(b"archive")
    assert java_opts(settings).split() == [
        "-Duser.timezone=UTC", "-XX:-DontCompileHugeMethods", f"-XX:SharedArchiveFile={path}"]


def test_turned_off_or_another_classpath_gets_no_archive(tmp_path: Path) -> None:
    on = settings_in(tmp_path)
    path = jvm.archive_path(on)
    assert path is not None
    path.parent.mkdir()
    path.write_bytes(b"archive")
    assert "SharedArchiveFile" not in java_opts(settings_in(tmp_path, spark_class_archive=False))
    assert "SharedArchiveFile" not in java_opts(on, class_archive=False)  # e.g. the Thrift Server
    assert jvm.java_options(settings_in(tmp_path, spark_class_archive=False)) == ""


def test_a_changed_jar_means_another_archive(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    jars = tmp_path / "jars" / "spark"
    jars.mkdir(parents=True)
    (jars / "a-1.0.jar").write_bytes(b"one")
    first = jvm.archive_path(settings)
    assert jvm.archive_path(settings) == first  # stable while nothing changes
    (jars / "a-1.0.jar").write_bytes(b"one, rebuilt")
    second = jvm.archive_path(settings)
    (jars / "b-2.0.jar").write_bytes(b"two")
    third = jvm.archive_path(settings)
    assert len({first, second, third}) == 3


def test_no_java_means_no_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    settings = settings_in(tmp_path)
    assert jvm.java_executable() is None
    assert jvm.archive_path(settings) is None
    assert jvm.java_options(settings) == ""
    assert class_archive.build(settings, quiet=True) is None


def test_huge_generated_methods_are_compiled_unless_turned_off(tmp_path: Path) -> None:
    assert "-XX:-DontCompileHugeMethods" in java_opts(settings_in(tmp_path)).split()
    off = settings_in(tmp_path, spark_compile_huge_methods=False)
    assert "DontCompileHugeMethods" not in java_opts(off)
