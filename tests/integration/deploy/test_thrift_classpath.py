"""The Spark Thrift Server's classpath (deploy/spark/thrift_conf.py + `make jars`) initialises
Hive's FunctionRegistry.

Spark 4 ships Hive 2.3 without hive-llap-common; FunctionRegistry's static initialiser needs its
``LlapSigner$Signable``. The server first touches FunctionRegistry when a session close builds a
Hive client; without the jar that handler thread dies with NoClassDefFoundError and the client
(dbt) loses its connection: "TSocket read 0 bytes" in two CI runs of 2026-11-27.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
PROBE = """
public class Probe {
  public static void main(String[] args) throws Exception {
    Class.forName("org.apache.hadoop.hive.ql.exec.FunctionRegistry");
    System.out.println("FunctionRegistry initialised");
  }
}
"""
# what Spark's launcher opens for its own JVMs (a subset FunctionRegistry's initialiser needs)
OPENS = [f"--add-opens=java.base/{p}=ALL-UNNAMED"
         for p in ("java.lang", "java.net", "java.nio", "java.util", "sun.nio.ch")]


def thrift_classpath(tmp: Path) -> list[str]:
    """pyspark's jars + the driver classpath the Thrift Server is started with."""
    import pyspark

    script = ROOT / "deploy" / "spark" / "thrift_conf.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp / "conf"), "--port", "10999"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    read_static = runpy.run_path(str(script))["read_static"]  # the script's own conf reader
    conf = read_static(tmp / "conf" / "spark-defaults.conf")
    ours = conf.get("spark.driver.extraClassPath", "").split(":")
    return [str(Path(pyspark.__file__).parent / "jars" / "*"), *filter(None, ours)]


def probe(tmp: Path, classpath: list[str]) -> subprocess.CompletedProcess:
    source = tmp / "Probe.java"
    source.write_text(PROBE)
    return subprocess.run(["java", *OPENS, "-cp", ":".join(classpath), str(source)],
                          capture_output=True, text=True, timeout=300)


def test_the_thrift_server_classpath_initialises_hive_functions(tmp_path: Path) -> None:
    classpath = thrift_classpath(tmp_path)
    assert any("hive-llap-common-" in entry for entry in classpath), classpath
    proc = probe(tmp_path, classpath)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FunctionRegistry initialised" in proc.stdout


def test_without_hive_llap_common_the_initialiser_fails(tmp_path: Path) -> None:
    """The probe can fail: pyspark's jars alone reproduce the error."""
    classpath = [e for e in thrift_classpath(tmp_path) if "hive-llap-common-" not in e]
    proc = probe(tmp_path, classpath)
    assert proc.returncode != 0
    assert "LlapSigner$Signable" in proc.stderr
