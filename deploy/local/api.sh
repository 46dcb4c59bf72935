# shellcheck shell=bash
# Step 6: the REST API (uvicorn api.main:app) on 127.0.0.1:8000.

API_MARKER="uvicorn"

start_api() {
  local log pid
  log="$(log_file api)"
  if port_open "$API_PORT"; then
    if pid="$(our_pid api "$API_MARKER")"; then
      ok "api already running (ours, pid $pid) on $HOST:$API_PORT"
    else
      ok "reusing the server already answering on $HOST:$API_PORT"
    fi
    return 0
  fi
  if [[ ! -f "$ROOT/api/main.py" ]]; then
    warn "api/main.py does not exist yet: API not started"
    return 0
  fi
  start_bg api "$VENV/bin/uvicorn" api.main:app --host "$HOST" --port "$API_PORT"
  wait_until 60 "API GET /healthz on $HOST:$API_PORT" "$log" \
    http_ok "http://$HOST:$API_PORT/healthz" || return 1
  ok "api started (pid $(cat "$(pid_file api)")) on http://$HOST:$API_PORT"
}

stop_api() { stop_pid api "$API_MARKER" 20 TERM; }
