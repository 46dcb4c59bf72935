"""Helpers of the outage drills: private services, a supervisor, the long/short switch."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from catalog.settings import get_settings
from tests.integration.streaming.conftest import ROOT, JobProcess

LONG = os.environ.get("SENTINEL_DRILL_LONG", "") not in ("", "0", "false")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not listen on {port} within {timeout}s")


class Supervisor:
    """Restarts the job whenever it exits, after a pause: what ``pipeline_watcher`` does."""

    def __init__(self, job: JobProcess, max_offsets: int | None, backoff: float = 2.0) -> None:
        self.job, self.max_offsets, self.backoff = job, max_offsets, backoff
        self.exits: list[int] = []
        self._down_since: float | None = None

    def start(self) -> None:
        self.job.start(max_offsets=self.max_offsets)

    def poll(self) -> None:
        if self.job.alive():
            return
        now = time.monotonic()
        if self._down_since is None:
            assert self.job.proc is not None
            self.exits.append(self.job.proc.returncode)
            self._down_since = now
        if now - self._down_since >= self.backoff:
            self._down_since = None
            self.start()

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``cond`` (restarting the job as needed); seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if cond():
                return time.monotonic() - started
            self.poll()
            time.sleep(0.5)
        pytest.fail(f"timed out after {timeout}s waiting for {what} "
                    f"(exits {self.exits}):\n{self.job.log_tail()}")


class PrivateRedis:
    """A redis-server of the drill's own (AOF, fsync always: a SIGKILL loses nothing)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port, 30, "private redis")

    def kill(self) -> None:
        """A hard outage: SIGKILL, the port refuses connections until ``start``."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A PostgreSQL cluster of the drill's own (initdb + postgres as the ``postgres`` OS user,
    trust auth on 127.0.0.1, data in /var/tmp which that user can reach), migrated with
    ``python -m catalog.migrate``."""

    def __init__(self) -> None:
        import tempfile

        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sentinel-drill-pg-", dir="/var/tmp"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen | None = None
        self.url = f"postgresql+psycopg2://sentinel@127.0.0.1:{self.port}/sentinel_drill"

    def _as_postgres(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["setpriv", "--reuid=postgres", "--regid=postgres",
                                 "--init-groups", "--", *args], cwd="/", **kw)

    def init(self) -> None:
        shutil.chown(self.root, "postgres", "postgres")
        rc = self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "sentinel",
                               "-E", "UTF8", "--locale=C.UTF-8", "--auth=trust",
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT).wait(120)
        assert rc == 0, "initdb failed"
        self.start()
        rc = subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                             "-U", "sentinel", "sentinel_drill"], timeout=60).returncode
        assert rc == 0, "createdb failed"
        env = {**os.environ, "SENTINEL_DATABASE_URL": self.url}
        out = subprocess.run([sys.executable, "-m", "catalog.migrate"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr

    def start(self) -> None:
        log = open(self.root / "postgres.log", "a")  # noqa: SIM115 - lives with the process
        self.proc = self._as_postgres(
            str(PG_BIN / "postgres"), "-D", str(self.data), "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.data}",
            "-c", "logging_collector=off", "-c", "max_connections=100",
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                              str(self.port)]).returncode != 0:
            assert time.monotonic() < deadline, "private postgres did not start"
            assert self.proc.poll() is None, (self.root / "postgres.log").read_text()[-2000:]
            time.sleep(0.3)

    def crash(self) -> None:
        """An immediate shutdown (SIGQUIT): no checkpoint, crash recovery on the next start."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateKafka:
    """A single-node KRaft broker of the drill's own, from the stack's jars (as
    deploy/local/kafka.sh starts the shared one), on spare ports with its own data dir."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.controller = free_port(), free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.jars = f"{get_settings().jars_dir}/kafka/*"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, *args: str) -> list[str]:
        return ["java", "-Xmx384m", "-Xms128m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                "-cp", self.jars, *args]

    def init(self) -> None:
        props = {
            "process.roles": "broker,controller", "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.dir / "data"), "num.partitions": "3",
            "offsets.topic.replication.factor": "1", "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0", "auto.create.topics.enable": "false",
            "num.network.threads": "1", "num.io.threads": "2",
        }
        (self.dir / "server.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j2.properties").write_text(
            "status = warn\nappender.out.type = Console\nappender.out.name = STDOUT\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = WARN\nrootLogger.appenderRef.out.ref = STDOUT\n")
        fmt = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t",
                                        "5u9bK0RDTmyCcYzWxhEWdQ", "-c",
                                        str(self.dir / "server.properties")),
                             capture_output=True, text=True, timeout=300)
        assert fmt.returncode == 0, fmt.stdout + fmt.stderr

    def start(self) -> None:
        log = open(self.dir / "kafka.log", "a")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            self._java("kafka.Kafka", str(self.dir / "server.properties")),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port, 300, "private kafka")
        self.wait_metadata()

    def wait_metadata(self, timeout: float = 300) -> None:
        from kafka.admin import KafkaAdminClient

        deadline = time.monotonic() + timeout
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                         request_timeout_ms=10_000)
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def create_topic(self, topic: str, partitions: int = 3) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=30_000)
        try:
            admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                          replication_factor=1)])
        finally:
            admin.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
