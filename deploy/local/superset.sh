# shellcheck shell=bash
# Step 8: Superset (dashboards + SQL Lab over the archive) on 127.0.0.1:8088.
#
#   sourced by stack.sh:  ensure_superset_venv / start_superset / stop_superset /
#                         status_superset / provision_superset
#   run on its own:       bash deploy/local/superset.sh install|start|stop|status|provision|
#                         reader-grants [DB]
#
# - its own venv .venv-superset (deploy/superset/requirements.txt: apache-superset 6.1.0 + the
#   the project's additions, every version pinned), skipped when up to date (stamp); pip log in
#   .sentinel/logs/superset-pip.log;
# - metadata in the `superset` database of the catalog server (created when missing);
#   config deploy/superset/superset_config.py; SECRET_KEY generated once into
#   .sentinel/superset-secret-key (0600);
# - `superset db upgrade` + `superset init` once per Superset version (stamped);
# - user `admin`, created once, password generated into .sentinel/superset-admin-password;
# - read-only Postgres role `superset_reader` (password in .sentinel/superset-reader-password)
#   with SELECT on the alert/health tables of the catalog, for the "Sentinel Alerts" database;
# - gunicorn (gthread) serving superset.app:create_app() on 127.0.0.1:8088.
# Env: SENTINEL_SUPERSET_PORT [8088], SENTINEL_START_SUPERSET=0 skips it in `make up`,
#      SENTINEL_SUPERSET_WORKERS [2], SENTINEL_SUPERSET_DATABASE_URL (metadata database).

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  _here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  # shellcheck source=deploy/local/lib.sh
  . "$_here/lib.sh"
  # shellcheck source=deploy/local/postgres.sh
  . "$_here/postgres.sh"
fi

SUPERSET_PORT="${SENTINEL_SUPERSET_PORT:-8088}"
SUPERSET_MARKER="superset.app:create_app"
SUPERSET_VENV="$ROOT/.venv-superset"
SUPERSET_PY="$SUPERSET_VENV/bin/python"
SUPERSET_REQ="$ROOT/deploy/superset/requirements.txt"
SUPERSET_READER="superset_reader"
export SUPERSET_CONFIG_PATH="$ROOT/deploy/superset/superset_config.py"
export SUPERSET_SECRET_FILE="$SENTINEL_HOME/superset-secret-key"
export SUPERSET_ADMIN_PASSWORD_FILE="$SENTINEL_HOME/superset-admin-password"
export SUPERSET_READER_PASSWORD_FILE="$SENTINEL_HOME/superset-reader-password"
export SENTINEL_PG_PORT="$PG_PORT" FLASK_APP="superset.app:create_app()"

superset_venv_hash() {
  { cat "$SUPERSET_REQ"; python3 --version; } | sha256sum | cut -d' ' -f1
}

superset_venv_up_to_date() {
  [[ -x "$SUPERSET_VENV/bin/superset" && -f "$STAMP_DIR/superset-venv.sha256" ]] &&
    [[ "$(cat "$STAMP_DIR/superset-venv.sha256")" == "$(superset_venv_hash)" ]]
}

ensure_superset_venv() {
  if superset_venv_up_to_date; then
    ok "superset venv up to date ($SUPERSET_VENV)"
    return 0
  fi
  need_cmd python3 python3
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_install python3-venv
  [[ -x "$SUPERSET_PY" ]] || python3 -m venv "$SUPERSET_VENV"
  local log t0=$SECONDS
  log="$(log_file superset-pip)"
  info "install -r deploy/superset/requirements.txt into $SUPERSET_VENV (uv, else pip; log: $log)"
  # no bytecode compiled at install (uv's default): it is written on first import instead
  pip_install "$SUPERSET_PY" -r "$SUPERSET_REQ" >"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    die "superset install failed; see $log"
  }
  superset_venv_hash >"$STAMP_DIR/superset-venv.sha256"
  ok "superset venv ready in $((SECONDS - t0))s ($SUPERSET_VENV)"
}

# new_secret FILE -- writes a random secret to FILE (0600) unless it already holds one
new_secret() {
  [[ -s "$1" ]] && return 0
  (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(int(__import__("sys").argv[1])))' \
    "${2:-32}" >"$1.tmp" && mv "$1.tmp" "$1")
  chmod 600 "$1"
}

# superset_pg_sql DB SQL|- -- SQL (or stdin for "-") as a role that may create roles: the postgres superuser over
# our cluster's socket, else `sentinel` over TCP (works when it has CREATEROLE)
superset_pg_sql() {
  local db="$1" sql="$2" sock="" args
  if our_pid postgres "$PG_MARKER" >/dev/null; then
    sock="$(pg_root)/socket"
  elif [[ -S /var/run/postgresql/.s.PGSQL.$PG_PORT ]]; then
    sock=/var/run/postgresql
  fi
  args=(-X -q -tA -v ON_ERROR_STOP=1 -p "$PG_PORT" -d "$db")
  if [[ "$sql" == - ]]; then args+=(-f -); else args+=(-c "$sql"); fi
  if [[ -n "$sock" ]]; then
    as_postgres "$PG_BIN/psql" -h "$sock" "${args[@]}"
  else
    PGPASSWORD=sentinel "$PG_BIN/psql" -h "$HOST" -U sentinel "${args[@]}"
  fi
}

# the `superset` metadata database (owner sentinel); prints "created" when it was new
ensure_superset_metadata_db() {
  if [[ -n "${SENTINEL_SUPERSET_DATABASE_URL:-}" ]]; then
    info "metadata database from SENTINEL_SUPERSET_DATABASE_URL (not created here)"
    return 0
  fi
  if [[ "$(PGPASSWORD=sentinel "$PG_BIN/psql" -X -h "$HOST" -p "$PG_PORT" -U sentinel \
      -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'superset'")" != 1 ]]; then
    PGPASSWORD=sentinel "$PG_BIN/psql" -X -q -h "$HOST" -p "$PG_PORT" -U sentinel -d postgres \
      -c "CREATE DATABASE superset" || die "could not create database superset"
    rm -f "$STAMP_DIR/superset-init.sha256" "$STAMP_DIR/superset-admin"
    info "created database superset (metadata)"
  fi
}

# the catalog database named by SENTINEL_DATABASE_URL (default sentinel)
catalog_db_name() {
  local url="${SENTINEL_DATABASE_URL:-postgresql://x@h/sentinel}"
  url="${url%%\?*}"
  echo "${url##*/}"
}

# reader_grants [DB] -- role superset_reader (LOGIN, read-only) + SELECT on the alert tables of
# DB (default: the catalog database). Idempotent; the password is generated once.
reader_grants() {
  local db="${1:-$(catalog_db_name)}" pw
  [[ "$db" =~ ^[A-Za-z0-9_]+$ ]] || die "unexpected database name: $db"
  new_secret "$SUPERSET_READER_PASSWORD_FILE" 24
  pw="$(cat "$SUPERSET_READER_PASSWORD_FILE")"
  superset_pg_sql postgres "DO \$\$BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$SUPERSET_READER') THEN
        CREATE ROLE $SUPERSET_READER LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
      END IF;
    END\$\$;
    ALTER ROLE $SUPERSET_READER SET default_transaction_read_only = on;
    ALTER ROLE $SUPERSET_READER SET statement_timeout = '120s';" >/dev/null \
    || die "could not create role $SUPERSET_READER (needs the postgres superuser or CREATEROLE)"
  # the password reaches psql on stdin, never its command line or a log
  printf "\\set pw '%s'\nALTER ROLE %s PASSWORD :'pw';\n" "$pw" "$SUPERSET_READER" \
    | superset_pg_sql postgres - >/dev/null || die "could not set the password of $SUPERSET_READER"
  superset_pg_sql "$db" "GRANT CONNECT ON DATABASE \"$db\" TO $SUPERSET_READER;
    GRANT USAGE ON SCHEMA public TO $SUPERSET_READER;
    DO \$\$DECLARE t text;
    BEGIN
      FOREACH t IN ARRAY ARRAY['fraud_alerts', 'stream_runs', 'pipelines', 'rules'] LOOP
        IF to_regclass('public.' || t) IS NOT NULL THEN
          EXECUTE format('GRANT SELECT ON public.%I TO $SUPERSET_READER', t);
        END IF;
      END LOOP;
    END\$\$;" >/dev/null || die "could not grant $SUPERSET_READER SELECT in database $db"
  ok "read-only role $SUPERSET_READER: SELECT on fraud_alerts, stream_runs, pipelines, rules of $db"
}

superset_cli() { "$SUPERSET_VENV/bin/superset" "$@"; }

# db upgrade + init (once per Superset version and metadata database), admin user (once)
init_superset() {
  local log want
  log="$(log_file superset)"
  new_secret "$SUPERSET_SECRET_FILE" 48
  ensure_superset_metadata_db
  want="$(superset_venv_hash)-${SENTINEL_SUPERSET_DATABASE_URL:-superset}"
  want="$(echo "$want" | sha256sum | cut -d' ' -f1)"
  if [[ "$(cat "$STAMP_DIR/superset-init.sha256" 2>/dev/null)" != "$want" ]]; then
    info "superset db upgrade + init (log: $log)"
    { superset_cli db upgrade && superset_cli init; } >>"$log" 2>&1 || {
      tail -n 30 "$log" >&2
      die "superset db upgrade/init failed; see $log"
    }
    echo "$want" >"$STAMP_DIR/superset-init.sha256"
  fi
  if [[ ! -s "$SUPERSET_ADMIN_PASSWORD_FILE" || ! -f "$STAMP_DIR/superset-admin" ]]; then
    new_secret "$SUPERSET_ADMIN_PASSWORD_FILE" 18
    # the password reaches `superset` through its prompt (stdin), never argv or the log
    local pw
    pw="$(cat "$SUPERSET_ADMIN_PASSWORD_FILE")"
    local out
    out="$(printf '%s\n%s\n' "$pw" "$pw" | superset_cli fab create-admin --username admin \
      --firstname Sentinel --lastname Admin --email admin@sentinel.local 2>>"$log")" \
      || die "could not create the Superset admin user; see $log"
    echo "$out" >>"$log"
    if grep -q "already exists" <<<"$out"; then  # e.g. the password file was deleted
      printf '%s\n%s\n' "$pw" "$pw" | superset_cli fab reset-password --username admin \
        >>"$log" 2>&1 || die "could not reset the Superset admin password; see $log"
    elif ! grep -q "created" <<<"$out"; then
      die "could not create the Superset admin user; see $log"
    fi
    touch "$STAMP_DIR/superset-admin"
    ok "superset user admin: password in $SUPERSET_ADMIN_PASSWORD_FILE"
  fi
}

start_superset() {
  local log pid
  log="$(log_file superset)"
  if port_open "$SUPERSET_PORT"; then
    if pid="$(our_pid superset "$SUPERSET_MARKER")"; then
      ok "superset already running (ours, pid $pid) on http://$HOST:$SUPERSET_PORT"
    else
      ok "reusing the server already answering on $HOST:$SUPERSET_PORT"
    fi
    return 0
  fi
  ensure_superset_venv
  init_superset
  reader_grants
  start_bg superset "$SUPERSET_VENV/bin/gunicorn" --bind "$HOST:$SUPERSET_PORT" \
    --workers "${SENTINEL_SUPERSET_WORKERS:-2}" --worker-class gthread --threads 4 \
    --timeout 300 --limit-request-line 0 --limit-request-field_size 0 \
    "$SUPERSET_MARKER()"
  wait_until 180 "Superset on $HOST:$SUPERSET_PORT" "$log" \
    superset_health || return 1
  ok "superset started (pid $(cat "$(pid_file superset)")): http://$HOST:$SUPERSET_PORT" \
    "(user admin, password in $SUPERSET_ADMIN_PASSWORD_FILE)"
}

superset_health() {
  "$SUPERSET_PY" - "http://$HOST:$SUPERSET_PORT/health" <<'PYEOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
    sys.exit(0 if r.status == 200 else 1)
PYEOF
}

stop_superset() { stop_pid superset "$SUPERSET_MARKER" 30 TERM; }

status_superset() { status_line superset "$SUPERSET_PORT" "$SUPERSET_MARKER"; }

# databases, datasets, charts and dashboards through the REST API (deploy/superset/provision.py)
provision_superset() {
  [[ -x "$SUPERSET_PY" ]] || die "no $SUPERSET_PY: run bash deploy/local/superset.sh install"
  "$SUPERSET_PY" "$ROOT/deploy/superset/provision.py" --url "http://$HOST:$SUPERSET_PORT"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    install) step "superset venv" ensure_superset_venv ;;
    start) step "superset" start_superset ;;
    stop) stop_superset ;;
    status) status_superset ;;
    provision) step "superset provisioning" provision_superset ;;
    reader-grants) step "superset reader role" reader_grants "${2:-}" ;;
    *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
fi
