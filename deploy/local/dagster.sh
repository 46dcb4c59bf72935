# shellcheck shell=bash
# Step 7: Dagster -- `dagster dev` (webserver 127.0.0.1:3000 + daemon + code server) over
# workspace.yaml, with DAGSTER_HOME=$SENTINEL_HOME/dagster. Storage in Postgres (database
# `dagster` on the catalog server, created when missing); SENTINEL_DAGSTER_STORAGE=sqlite keeps
# it in files instead. Stream runs are children of this process group: `stop_dagster` stops
# them gracefully (each stream finishes its batch) before Dagster itself.

DAGSTER_PORT="${SENTINEL_DAGSTER_PORT:-3000}"
DAGSTER_MARKER="dagster dev"
export DAGSTER_HOME="${DAGSTER_HOME:-$SENTINEL_HOME/dagster}"

start_dagster() {
  local log pid storage
  log="$(log_file dagster)"
  if port_open "$DAGSTER_PORT"; then
    if pid="$(our_pid dagster "$DAGSTER_MARKER")"; then
      ok "dagster already running (ours, pid $pid) on http://$HOST:$DAGSTER_PORT"
    else
      ok "reusing the server already answering on $HOST:$DAGSTER_PORT"
    fi
    return 0
  fi
  [[ -x "$VENV/bin/dagster" ]] || die "$VENV/bin/dagster missing (pip install -e '.[orchestration]')"
  storage="${SENTINEL_DAGSTER_STORAGE:-postgres}"
  "$PY" -m orchestration.instance --home "$DAGSTER_HOME" --storage "$storage" >>"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; die "could not write $DAGSTER_HOME/dagster.yaml; see $log"; }
  info "DAGSTER_HOME=$DAGSTER_HOME ($storage storage), log $log"
  # the Superset `make up` starts is provisioned again after every dbt build (superset_dashboards)
  if [[ "${SENTINEL_START_SUPERSET:-1}" == 1 && -z "${SENTINEL_SUPERSET_URL:-}" ]]; then
    export SENTINEL_SUPERSET_URL="http://$HOST:${SENTINEL_SUPERSET_PORT:-8088}"
  fi
  # a background job of a non-interactive shell ignores SIGINT, and so would `dagster dev` (and
  # never shut down on it): restore the default disposition before exec
  start_bg dagster "$PY" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$VENV/bin/dagster" dev -w "$ROOT/workspace.yaml" \
    -h "$HOST" -p "$DAGSTER_PORT"
  wait_until 180 "Dagster webserver on $HOST:$DAGSTER_PORT" "$log" \
    http_ok "http://$HOST:$DAGSTER_PORT/server_info" || return 1
  ok "dagster started (pid $(cat "$(pid_file dagster)")): UI http://$HOST:$DAGSTER_PORT"
}

# group_alive PGID -- a process of the group is still running (zombies waiting for a reaper
# that never comes, e.g. without an init process in a container, do not count)
group_alive() {
  ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# SIGINT (Ctrl-C) to the whole process group (webserver, daemon, code server, run workers):
# each stream run is interrupted and stops its streaming job after the current batch.
stop_dagster() {
  local pid t0
  if ! pid="$(our_pid dagster "$DAGSTER_MARKER")"; then
    stop_pid dagster "$DAGSTER_MARKER" 5 TERM
    return 0
  fi
  kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || true
  t0=$SECONDS
  while group_alive "$pid"; do
    if ((SECONDS - t0 >= 90)); then
      warn "dagster (group $pid) still running after 90s; sending KILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      break
    fi
    sleep 1
  done
  rm -f "$(pid_file dagster)"
  ok "dagster: stopped (pid $pid)"
}

status_dagster() { status_line dagster "$DAGSTER_PORT" "$DAGSTER_MARKER"; }

# The shared stream host (SENTINEL_STREAM_SHARED_APP=true): started on demand by the first stream
# run, it writes its own pid file and exits when idle; `make down` stops it after Dagster (its
# queries finish their batch first).
STREAM_HOST_MARKER="streaming.host"
STREAM_HOST_PORT="${SENTINEL_STREAM_HOST_PORT:-8791}"
stop_stream_host() { stop_pid stream-host "$STREAM_HOST_MARKER" 180 TERM; }
status_stream_host() { status_line stream-host "$STREAM_HOST_PORT" "$STREAM_HOST_MARKER"; }
