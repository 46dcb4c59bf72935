"""Scale-out: a pipeline's detect and archive on a Spark standalone cluster, as a user who
outgrows one machine runs them (``SENTINEL_SPARK_MASTER=spark://…``).

A master and one worker are started from pyspark's own classes on this machine; the stream
job is the unchanged ``streaming.job`` with the cluster as its master. Every sink must hold
exactly what plain Python expects, as on ``local[*]``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]
SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(ui_port: int) -> list[dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=3) as resp:
            return [w for w in json.load(resp).get("workers", []) if w.get("state") == "ALIVE"]
    except OSError:
        return []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    """A standalone master and one 8-core worker on loopback; yields the master URL."""
    work = tmp_path_factory.mktemp("spark-cluster")
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(work),
           "SPARK_WORKER_DIR": str(work / "worker")}
    url = f"spark://127.0.0.1:{port}"
    logs = [(work / "master.log").open("w"), (work / "worker.log").open("w")]
    procs = [subprocess.Popen([str(SPARK_CLASS), "org.apache.spark.deploy.master.Master",
                               "--host", "127.0.0.1", "--port", str(port), "--webui-port",
                               str(ui)], env=env, stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        procs.append(subprocess.Popen(
            [str(SPARK_CLASS), "org.apache.spark.deploy.worker.Worker", url, "--host",
             "127.0.0.1", "--cores", "8", "--memory", "3g", "--webui-port", str(worker_ui),
             "--work-dir", str(work / "worker")],
            env=env, stdout=logs[1], stderr=subprocess.STDOUT))
        while time.monotonic() < deadline and not _workers(ui):
            time.sleep(1)
        assert _workers(ui), (work / "worker.log").read_text()[-3000:]
        yield url
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for fh in logs:
            fh.close()


def test_detect_and_archive_on_a_standalone_cluster(cluster, make_pipeline, job_factory,
                                                     spark_reader, kit, tmp_path):
    warehouse = tmp_path / "warehouse"
    tp = make_pipeline([s for s in kit.base_rules() if s.predicate])
    tp.produce(kit.wave(tp, 400, 1))
    job = job_factory(tp.id, {"SENTINEL_WAREHOUSE": str(warehouse),
                              "SENTINEL_SPARK_MASTER": cluster, "SPARK_LOCAL_IP": "127.0.0.1"})
    job.start()
    kit.wait_for(lambda: kit.committed_of(warehouse, tp) == 400, 600, "wave 1 archived", job)
    tp.produce(kit.wave(tp, 200, 2))  # while running: through the detect path as they arrive
    kit.wait_for(lambda: kit.committed_of(warehouse, tp) == 600, 300, "wave 2 archived", job)
    kit.check_sinks(spark_reader, tp, str(warehouse), kit.expected_alerts(tp))
    assert "master=spark://127.0.0.1" in job.log_path.read_text()
    tp.set_status("paused")
    assert job.wait_exit(120) == 0, job.log_tail()
