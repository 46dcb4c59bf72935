"""Where a Dagster run's stream runs: its own ``streaming.job`` process, or the shared host.

``StreamProcess`` (default): the child runs in its own session (a Ctrl-C aimed at Dagster does
not hit it half-way through a batch) and gets SIGTERM if the run worker dies, so an orphaned
stream never keeps writing. Stopping = SIGTERM, then the job finishes its current batch and
exits 0.

``HostedStream`` (``SENTINEL_STREAM_SHARED_APP=true``): the same interface over the shared stream
host (``python -m streaming.host``, one Spark application for every pipeline), which it starts
when none answers; the host stops the query itself when this run worker disappears.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from catalog.db import get_engine
from catalog.settings import PROJECT_ROOT, get_settings
from orchestration.streams.queries import progress

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def log_path(pipeline_id: int, run_id: str) -> Path:
    """Where the child's stdout/stderr go: ``.sentinel/logs/streams/pipeline_<id>-<run>.log``."""
    folder = Path(get_settings().home) / "logs" / "streams"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"pipeline_{pipeline_id}-{run_id[:8]}.log"


def command(pipeline_id: int, run_id: str, trigger_seconds: float | None) -> list[str]:
    cmd = [sys.executable, "-m", "streaming.job", "--pipeline-id", str(pipeline_id),
           "--dagster-run-id", run_id]
    if trigger_seconds:
        cmd += ["--trigger-seconds", str(trigger_seconds)]
    return cmd


def log_tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a stream's log (none when it cannot be read)."""
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


class StreamProcess:
    """One running ``streaming.job``: start, poll, stop gracefully, read its log's tail."""

    def __init__(self, pipeline_id: int, run_id: str, trigger_seconds: float | None = None):
        self.pipeline_id = pipeline_id
        self.log = log_path(pipeline_id, run_id)
        self.cmd = command(pipeline_id, run_id, trigger_seconds)
        self.proc: subprocess.Popen | None = None

    def start(self) -> int:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self.proc.pid

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def stop(self, timeout: float) -> tuple[int, bool]:
        """SIGTERM and wait; SIGKILL after ``timeout``. Returns (exit code, graceful?)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout), True
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(), False
        return int(self.proc.returncode), True

    def tail(self, lines: int = 15) -> str:
        return "\n".join(log_tail(self.log, lines))


def host_log_path() -> Path:
    """The shared stream host's log: ``.sentinel/logs/stream-host.log`` (as `make status` shows)."""
    folder = Path(get_settings().home) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "stream-host.log"


def host_request(method: str, path: str, body: dict | None = None,
                 timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """One call to the host's JSON API: (HTTP status, body); OSError when nobody answers."""
    url = f"http://127.0.0.1:{get_settings().stream_host_port}{path}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def host_pid() -> int | None:
    """The running host's pid, or None when no host answers."""
    try:
        code, body = host_request("GET", "/health", timeout=3.0)
    except (OSError, ValueError):
        return None
    return int(body["pid"]) if code == 200 else None


def ensure_host() -> int:
    """The host's pid, starting ``python -m streaming.host`` (detached) if none answers.

    A lock file makes concurrent callers start at most one host."""
    settings = get_settings()
    lock = Path(settings.home) / "run" / "stream-host.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if (pid := host_pid()) is not None:
            return pid
        log = host_log_path()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streaming.host"], cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + settings.stream_host_start_timeout_seconds
        while time.monotonic() < deadline:
            if (pid := host_pid()) is not None:
                return pid
            if proc.poll() is not None:
                raise RuntimeError(f"the stream host exited with {proc.returncode} at start:\n"
                                   + "\n".join(log_tail(log, 15)))
            time.sleep(1.0)
        proc.kill()
        raise RuntimeError(f"the stream host did not answer within "
                           f"{settings.stream_host_start_timeout_seconds:.0f}s; see {log}")


class HostedStream:
    """One pipeline's query in the shared stream host, with ``StreamProcess``'s interface."""

    UNREACHABLE_POLLS = 5  # consecutive failed polls before the host counts as gone

    def __init__(self, pipeline_id: int, run_id: str, trigger_seconds: float | None = None):
        self.pipeline_id = pipeline_id
        self.key = run_id
        self.trigger_seconds = trigger_seconds
        self.log = host_log_path()
        self.error: str | None = None
        self._misses = 0

    def start(self) -> int:
        """Ask the host (started if needed) to run the query; returns the host's pid."""
        body = {"key": self.key, "pipeline_id": self.pipeline_id, "dagster_run_id": self.key,
                "trigger_seconds": self.trigger_seconds, "owner_pid": os.getpid()}
        for _ in range(60):
            pid = ensure_host()
            code, answer = host_request("POST", "/queries", body)
            if code == 202:
                return pid
            if code != 503:  # 503: that host is on its way out; the next one takes it
                raise RuntimeError(f"the stream host refused pipeline {self.pipeline_id}: "
                                   f"HTTP {code} {answer.get('detail')}")
            time.sleep(1.0)
        raise RuntimeError("the stream host kept shutting down; see " + str(self.log))

    def _recorded_end(self) -> int | None:
        """How the query's ``stream_runs`` row says it ended (None: not ended / no row)."""
        with get_engine().connect() as conn:
            row = progress(conn, self.key)
        if row is None or row["ended_at"] is None:
            return None
        return 0 if row["status"] == "stopped" else 1

    def poll(self) -> int | None:
        """None while the query runs; 0 stopped, 1 failed (or the host is gone)."""
        try:
            code, answer = host_request("GET", f"/queries/{self.key}")
        except (OSError, ValueError) as exc:
            # The host may have ended (idle) right after our query stopped: its row says how.
            if (ended := self._recorded_end()) is not None:
                return ended
            self._misses += 1
            if self._misses < self.UNREACHABLE_POLLS:
                return None
            self.error = f"the stream host stopped answering: {exc}"
            return 1
        self._misses = 0
        if code == 404:
            if (ended := self._recorded_end()) is not None:
                return ended
            self.error = "the stream host no longer knows this query (it was restarted)"
            return 1
        if answer["state"] in ("starting", "running"):
            return None
        self.error = answer.get("error")
        return int(answer["code"])

    def stop(self, timeout: float) -> tuple[int, bool]:
        """Ask the query to finish its batch and stop; (code, graceful?) as StreamProcess."""
        try:
            host_request("POST", f"/queries/{self.key}/stop", {"reason": "signal"})
        except OSError:
            return 1, False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (rc := self.poll()) is not None:
                return rc, True  # it ended by itself, after its batch
            time.sleep(0.5)
        return 1, False

    def tail(self, lines: int = 15) -> str:
        return "\n".join([*log_tail(self.log, lines), *([self.error] if self.error else [])])


def stream_for(pipeline_id: int, run_id: str,
               trigger_seconds: float | None) -> StreamProcess | HostedStream:
    """The stream of a Dagster run: the shared host's query or its own process (the setting)."""
    if get_settings().stream_shared_app:
        return HostedStream(pipeline_id, run_id, trigger_seconds)
    return StreamProcess(pipeline_id, run_id, trigger_seconds)
