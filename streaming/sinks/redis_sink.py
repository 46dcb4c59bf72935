"""Alerts into Redis for sub-millisecond "is this transaction risky?" look-ups.

Per alert, one atomic Lua call (all pipelined, one round trip per chunk):
* ``fraud:alert:<alert_id>`` marker (``SET NX EX ttl``) — tells a new alert from a replay;
* ``fraud:txn:<event_id>`` hash merged: score (max), severity (highest), rule_ids (sorted,
  comma-separated), pipeline_id, alert_time (ISO, of the latest new alert), then ``EXPIRE``;
* only for a new alert: ``XADD fraud:alerts:<pipeline_id> MAXLEN ~ n`` and
  ``HINCRBY fraud:counts:<pipeline_id> <severity> 1``.
Marker and effects change in one script, so a replayed batch adds no stream entry and no count.
(Single Redis node: the script touches four keys, which Redis Cluster would need co-located.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from streaming.sinks.retry import with_retry

CHUNK = 1000
_SCRIPT = """
local ttl, maxlen = tonumber(ARGV[1]), ARGV[2]
local alert_id, rule_id, severity, event_id = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local score, pipeline_id, alert_time = ARGV[7], ARGV[8], ARGV[9]
local is_new = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ttl)
local rank = {info = 1, warning = 2, critical = 3}
local cur = redis.call('HMGET', KEYS[2], 'score', 'severity', 'rule_ids', 'alert_time')
if cur[1] and cur[1] ~= '' and (score == '' or tonumber(cur[1]) > tonumber(score)) then
  score = cur[1]
end
if cur[2] and (rank[cur[2]] or 0) > (rank[severity] or 0) then severity = cur[2] end
local ids, seen = {}, {}
if cur[3] and cur[3] ~= '' then
  for id in string.gmatch(cur[3], '[^,]+') do
    if not seen[id] then seen[id] = true; table.insert(ids, tonumber(id)) end
  end
end
if not seen[rule_id] then table.insert(ids, tonumber(rule_id)) end
table.sort(ids)
if not is_new and cur[4] then alert_time = cur[4] end
redis.call('HSET', KEYS[2], 'score', score, 'severity', severity,
  'rule_ids', table.concat(ids, ','), 'pipeline_id', pipeline_id, 'alert_time', alert_time)
redis.call('EXPIRE', KEYS[2], ttl)
if is_new then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'alert_id', alert_id,
    'rule_id', rule_id, 'severity', ARGV[5], 'event_id', event_id)
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
  return 1
end
return 0
"""


def txn_key(event_id: str) -> str:
    return f"fraud:txn:{event_id}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class RedisAlertSink:
    """Mirror of a pipeline's alerts in Redis (see module docstring for the key layout)."""

    def __init__(self, client: redis.Redis, *, ttl_seconds: int, stream_maxlen: int) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.maxlen = stream_maxlen
        self.script = client.register_script(_SCRIPT)

    @classmethod
    def from_url(cls, url: str, *, ttl_seconds: int, stream_maxlen: int) -> RedisAlertSink:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        return cls(client, ttl_seconds=ttl_seconds, stream_maxlen=stream_maxlen)

    def _write_once(self, rows: Sequence[dict[str, Any]]) -> int:
        new = 0
        for start in range(0, len(rows), CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for row in rows[start : start + CHUNK]:
                pid = row["pipeline_id"]
                keys = [
                    f"fraud:alert:{row['alert_id']}",
                    txn_key(row["event_id"]),
                    f"fraud:alerts:{pid}",
                    f"fraud:counts:{pid}",
                ]
                args = [
                    self.ttl, self.maxlen, row["alert_id"], row["rule_id"], row["severity"],
                    row["event_id"], _text(row["score"]), pid, _text(row["alert_timestamp"]),
                ]
                self.script(keys=keys, args=args, client=pipe)
            new += sum(int(r) for r in pipe.execute())
        return new

    def write_alerts(self, rows: Sequence[dict[str, Any]]) -> int:
        """Mirror the alerts; returns how many were new (not seen in an earlier attempt)."""
        if not rows:
            return 0
        return with_retry("redis alerts", lambda: self._write_once(rows))
