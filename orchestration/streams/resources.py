"""Resources of the streams: how the watcher supervises them, and the Redis they write to."""

from __future__ import annotations

from dagster import ConfigurableResource

from catalog.settings import get_settings
from orchestration.streams.reconcile import Policy


class StreamPolicyResource(ConfigurableResource):
    """How the watcher relaunches failed streams and how it judges a stream alive."""

    max_attempts: int = 5
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 600.0
    heartbeat_seconds: float = 60.0
    stop_grace_seconds: float = 90.0
    # SQL LIKE pattern on pipeline names: lets a deployment (or a test) own only some pipelines
    only_names_like: str | None = None

    def policy(self) -> Policy:
        return Policy(self.max_attempts, self.backoff_base_seconds, self.backoff_max_seconds,
                      self.heartbeat_seconds, self.stop_grace_seconds)


class RedisResource(ConfigurableResource):
    """The hot cache the stream writes alerts to (used for health and counters)."""

    url: str | None = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url or get_settings().redis_dsn)
