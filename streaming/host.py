"""``python -m streaming.host``: ONE Spark application holding the queries of many pipelines.

With ``SENTINEL_STREAM_SHARED_APP=true`` a Dagster ``stream_pipeline`` run does not start a
``streaming.job`` process (one JVM per pipeline: ~1 GiB and a JVM's start-up each) but asks this
host to run its pipeline's query; the run still watches, stops and fails exactly as before, so
Dagster keeps one run per pipeline. The host serves a small JSON API on 127.0.0.1:

- ``GET /health`` → ``{"pid": …, "queries": n}``
- ``POST /queries`` ``{"key", "pipeline_id", "trigger_seconds", "dagster_run_id", "owner_pid"}``
  → 202, the query starts in the background (409 if the pipeline already runs here)
- ``GET /queries/<key>`` → ``{"state": starting|running|stopped|failed, "code", "error"}``
- ``POST /queries/<key>/stop`` → the query finishes its batch and stops

A query whose owner process (the Dagster run worker) is gone is stopped, so an orphan never
keeps writing; the host exits after ``SENTINEL_STREAM_HOST_IDLE_SECONDS`` without a query, and
on SIGTERM stops every query gracefully first.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from catalog.settings import get_settings
from streaming.job import PipelineQuery
from streaming.pipeline import load_pipeline
from streaming.processes import owner_alive
from streaming.session import build_session, local_slots

log = logging.getLogger("streaming.host")

LIVE = ("starting", "running")


@dataclass
class HostedQuery:
    """One pipeline's query in the host, keyed by the Dagster run that asked for it."""

    key: str
    pipeline_id: int
    owner_pid: int | None
    state: str = "starting"
    code: int | None = None
    error: str | None = None
    query: PipelineQuery | None = None
    stop_reason: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def public(self) -> dict[str, Any]:
        return {"key": self.key, "pipeline_id": self.pipeline_id, "state": self.state,
                "code": self.code, "error": self.error}


class HostClosing(RuntimeError):
    """The host takes no new query: it is stopping."""


class StreamHost:
    """The queries of one Spark application: start, report, stop, reap orphans."""

    def __init__(self, spark, *, idle_seconds: float) -> None:
        self.spark = spark
        self.idle_seconds = idle_seconds
        self.queries: dict[str, HostedQuery] = {}
        self._lock = threading.Lock()
        self._idle_since = time.monotonic()
        self.closing = False  # no new query once the host is on its way out

    def live(self) -> list[HostedQuery]:
        with self._lock:
            return [q for q in self.queries.values() if q.state in LIVE]

    def start(self, key: str, pipeline_id: int, *, trigger_seconds: float | None,
              dagster_run_id: str | None, owner_pid: int | None) -> HostedQuery:
        """Register and start a query; ValueError when the pipeline already runs here,
        HostClosing when the host is shutting down (the caller starts a new host)."""
        with self._lock:
            if self.closing:
                raise HostClosing("the stream host is shutting down")
            busy = [q for q in self.queries.values()
                    if q.pipeline_id == pipeline_id and q.state in LIVE]
            if busy:
                raise ValueError(f"pipeline {pipeline_id} already runs here (key {busy[0].key})")
            if key in self.queries:
                raise ValueError(f"key {key} was already used")
            hosted = HostedQuery(key, pipeline_id, owner_pid)
            self.queries[key] = hosted
        threading.Thread(target=self._run, args=(hosted, trigger_seconds, dagster_run_id),
                         name=f"query-{pipeline_id}", daemon=True).start()
        return hosted

    def _run(self, hosted: HostedQuery, trigger_seconds: float | None,
             dagster_run_id: str | None) -> None:
        settings = get_settings()
        try:
            pipeline = load_pipeline(hosted.pipeline_id)
            if pipeline.status != "active":
                log.info("pipeline %s is %s: nothing to run", pipeline.id, pipeline.status)
                hosted.state, hosted.code = "stopped", 0
                return
            trigger = (settings.trigger_interval_seconds if trigger_seconds is None
                       else trigger_seconds)
            query = PipelineQuery(self.spark, pipeline, trigger=trigger,
                                  max_offsets=settings.max_offsets_per_trigger,
                                  dagster_run_id=dagster_run_id)
            with hosted.lock:
                hosted.query = query
                stop = hosted.stop_reason
            query.start()
            if stop is not None:
                query.request_stop(stop)
            hosted.state = "running"
            hosted.code = query.wait()
            hosted.state = "stopped" if hosted.code == 0 else "failed"
        except BaseException as exc:  # recorded for the Dagster run, which fails with it
            log.exception("pipeline %s: query failed", hosted.pipeline_id)
            hosted.error = f"{type(exc).__name__}: {exc}"
            hosted.state, hosted.code = "failed", 1

    def stop(self, key: str, reason: str) -> HostedQuery:
        """Ask a query to finish its batch and stop (KeyError if unknown)."""
        hosted = self.queries[key]
        with hosted.lock:
            hosted.stop_reason = hosted.stop_reason or reason
            query = hosted.query
        if query is not None:
            query.request_stop(reason)
        return hosted

    def stop_all(self, reason: str) -> None:
        with self._lock:
            self.closing = True
        for hosted in self.live():
            self.stop(hosted.key, reason)

    def spark_alive(self) -> bool:
        """Whether the application's SparkContext still runs (a dead JVM fails every query)."""
        if self.spark is None:
            return True
        try:
            return not self.spark.sparkContext._jsc.sc().isStopped()
        except Exception:  # py4j: the JVM is gone
            return False

    def reap(self) -> bool:
        """Stop queries whose owner is gone; True when the host should exit: idle long enough,
        or its Spark application died (the next run then starts a fresh host)."""
        if not self.spark_alive():
            log.error("the Spark application of this host is gone: exiting")
            with self._lock:
                self.closing = True
            return True
        live = self.live()
        for hosted in live:
            if hosted.stop_reason is None and not owner_alive(hosted.owner_pid):
                log.warning("pipeline %s: owner pid %s is gone, stopping its query",
                            hosted.pipeline_id, hosted.owner_pid)
                self.stop(hosted.key, "signal")
        if live:
            self._idle_since = time.monotonic()
            return False
        if time.monotonic() - self._idle_since < self.idle_seconds:
            return False
        with self._lock:  # idle: refuse new queries from now on (checked again under the lock)
            if any(q.state in LIVE for q in self.queries.values()):
                return False
            self.closing = True
        return True


def _handler(host: StreamHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:  # requests are not news
            log.debug(fmt, *args)

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = self.path.strip("/").split("/")
            if parts == ["health"]:
                self._send(200, {"pid": os.getpid(), "queries": len(host.live())})
            elif len(parts) == 2 and parts[0] == "queries" and parts[1] in host.queries:
                self._send(200, host.queries[parts[1]].public())
            else:
                self._send(404, {"detail": f"no such resource: {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            parts = self.path.strip("/").split("/")
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))
                                  or b"{}")
            except ValueError as exc:
                self._send(400, {"detail": f"body is not JSON: {exc}"})
                return
            if parts == ["queries"]:
                try:
                    hosted = host.start(
                        str(body["key"]), int(body["pipeline_id"]),
                        trigger_seconds=body.get("trigger_seconds"),
                        dagster_run_id=body.get("dagster_run_id"),
                        owner_pid=body.get("owner_pid"))
                except (KeyError, TypeError) as exc:
                    self._send(422, {"detail": f"missing or invalid field: {exc}"})
                except HostClosing as exc:
                    self._send(503, {"detail": str(exc)})
                except ValueError as exc:
                    self._send(409, {"detail": str(exc)})
                else:
                    self._send(202, hosted.public())
            elif len(parts) == 3 and parts[0] == "queries" and parts[2] == "stop":
                if parts[1] not in host.queries:
                    self._send(404, {"detail": f"no query {parts[1]}"})
                else:
                    self._send(202, host.stop(parts[1], body.get("reason") or "signal").public())
            else:
                self._send(404, {"detail": f"no such resource: {self.path}"})

    return Handler


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = get_settings()
    # Bind first: a second host fails here, before it starts a JVM. Requests wait in the
    # backlog until the session is up and the handler serves them.
    server = ThreadingHTTPServer(("127.0.0.1", settings.stream_host_port),
                                 BaseHTTPRequestHandler)
    server.daemon_threads = True
    master = local_slots(settings.spark_master, settings.stream_host_task_slots)
    host = StreamHost(build_session("sentinel-stream-host", master=master),
                      idle_seconds=settings.stream_host_idle_seconds)
    server.RequestHandlerClass = _handler(host)
    pid_file = settings.home / "run" / "stream-host.pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    threading.Thread(target=server.serve_forever, name="host-api", daemon=True).start()
    log.info("stream host pid %s on 127.0.0.1:%s (exits after %ss idle)", os.getpid(),
             settings.stream_host_port, settings.stream_host_idle_seconds)
    while not stopping.wait(1.0):
        if host.reap():
            log.info("no query for %ss: exiting", settings.stream_host_idle_seconds)
            break
    host.stop_all("signal")
    deadline = time.monotonic() + 600
    while host.live() and time.monotonic() < deadline:  # each query finishes its batch
        time.sleep(0.5)
    server.shutdown()
    if pid_file.read_text().strip() == str(os.getpid()):
        pid_file.unlink()
    log.info("stream host stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
