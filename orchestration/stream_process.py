"""The streaming job as a child process of a Dagster run (``python -m streaming.job``).

The child runs in its own session (a Ctrl-C aimed at Dagster does not hit it half-way through
a batch) and gets SIGTERM if the run worker dies, so an orphaned stream never keeps writing.
Stopping = SIGTERM, then the job finishes its current batch and exits 0.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

from catalog.settings import PROJECT_ROOT, get_settings

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
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])
