"""Stops a streaming query cleanly when the catalog says so (its desired state).

Every trigger interval the watcher reads the pipeline's status and schema version, and
records the Kafka lag. When the pipeline is no longer ``active`` (or was deleted, or its schema
version moved — the orchestrator restarts it with the new schema) or a signal arrived, it waits
for the running batch to finish, forbids the next one and stops the query.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import select

from catalog.db import get_engine
from catalog.tables import pipelines
from streaming import progress
from streaming.pipeline import Pipeline

log = logging.getLogger(__name__)


class StopRequested(RuntimeError):
    """Raised instead of processing a batch that started after a stop was requested."""


def kafka_lag(last_progress: dict | None) -> int | None:
    """Records behind the latest offsets, from a query progress report (None if unknown)."""
    if not last_progress:
        return None
    lag = 0
    for source in last_progress.get("sources", []):
        latest, end = source.get("latestOffset"), source.get("endOffset")
        if not latest or not end:
            return None
        latest = json.loads(latest) if isinstance(latest, str) else latest
        end = json.loads(end) if isinstance(end, str) else end
        if not isinstance(latest, dict) or not isinstance(end, dict):
            return None  # "null" offsets: the source has not reported yet
        for topic, parts in latest.items():
            for part, offset in parts.items():
                lag += max(0, int(offset) - int(end.get(topic, {}).get(part, 0)))
    return lag


class StopController:
    """The lock between micro-batches and a stop request, plus the polling thread."""

    def __init__(self, pipeline: Pipeline, interval: float, run_id: int | None) -> None:
        self.pipeline = pipeline
        self.interval = interval
        self.run_id = run_id
        self.query = None
        self.query_id = ""
        self.reason: str | None = None
        self.stopping = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._before_stop: Callable[[], None] | None = None

    def attach(self, query, before_stop: Callable[[], None] | None = None) -> None:
        """Watch ``query`` (its batches hold the lock); ``before_stop`` runs first on a stop."""
        self.query = query
        self.query_id = str(query.id)
        self._before_stop = before_stop

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Held while a batch runs; a batch arriving after a stop request fails uncommitted."""
        with self._lock:
            if self.stopping:
                raise StopRequested(f"stop requested: {self.reason}")
            while not self.query_id:  # the first batch can start before start() returned
                self._wake.wait(0.05)
            yield

    def request_stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._wake.set()

    def start(self) -> None:
        threading.Thread(target=self._loop, name="pipeline-watcher", daemon=True).start()

    def _check(self) -> None:
        with get_engine().connect() as conn:
            row = conn.execute(
                select(pipelines.c.status, pipelines.c.schema_version)
                .where(pipelines.c.id == self.pipeline.id)
            ).first()
        if row is None:
            self.request_stop("pipeline deleted")
        elif row.status != "active":
            self.request_stop(f"pipeline {row.status}")
        elif row.schema_version != self.pipeline.schema_version:
            self.request_stop(f"schema version {row.schema_version} needs a restart")

    def _loop(self) -> None:
        while self.reason is None:
            try:
                self._check()
                if self.run_id is not None and self.query is not None:
                    progress.record_lag(self.run_id, kafka_lag(self.query.lastProgress))
            except Exception as exc:  # a catalog hiccup must not kill the stream
                log.warning("watcher: %s", exc)
            self._wake.wait(self.interval)
        log.info("stop requested (%s): waiting for the running batch", self.reason)
        if self._before_stop is not None:
            try:
                self._before_stop()
            except Exception as exc:  # the archive must still stop
                log.warning("stopping the hot path: %s", exc)
        with self._lock:
            self.stopping = True
        if self.query is not None:
            self.query.stop()
