# shellcheck shell=bash
# Step 3b: Redis (Debian package) with data in $SENTINEL_HOME/redis, on 127.0.0.1:6379 only.

REDIS_MARKER="redis-server"

redis_ping() { [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

start_redis() {
  local log pid
  log="$(log_file redis)"
  if port_open "$REDIS_PORT"; then
    if pid="$(our_pid redis "$REDIS_MARKER")"; then
      ok "redis already running (ours, pid $pid) on $HOST:$REDIS_PORT"
    else
      ok "reusing the Redis server already answering on $HOST:$REDIS_PORT"
    fi
    return 0
  fi
  apt_install redis-server
  mkdir -p "$SENTINEL_HOME/redis"
  start_bg redis redis-server --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
    --dir "$SENTINEL_HOME/redis" --daemonize no --logfile "" --save 60 1000 --appendonly no
  wait_until 30 "Redis on $HOST:$REDIS_PORT" "$log" redis_ping || return 1
  ok "redis started (pid $(cat "$(pid_file redis)")) on $HOST:$REDIS_PORT"
}

stop_redis() { stop_pid redis "$REDIS_MARKER" 30 TERM; }
