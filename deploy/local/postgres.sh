# shellcheck shell=bash
# Step 3a: PostgreSQL 15 (Debian package) with our own cluster under $SENTINEL_HOME/postgres,
# listening on 127.0.0.1:5432 only; role and database `sentinel`; catalog migrations; the first
# admin API key.

PG_VERSION=15
PG_BIN="/usr/lib/postgresql/$PG_VERSION/bin"
PG_MARKER="postgres"

# runs a command as the postgres OS user (from /, which that user can always enter)
as_postgres() { (cd / && setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"); }

# The cluster lives in $SENTINEL_HOME/postgres when the postgres OS user can reach it; when a
# parent folder is closed to other users (e.g. a 0700 checkout folder) it lives in /var/tmp and
# $SENTINEL_HOME/postgres is a symlink to it.
pg_root() {
  local want="$SENTINEL_HOME/postgres"
  if [[ -L "$want" ]]; then readlink -f "$want"; return; fi
  if [[ ! -d "$want" ]]; then
    mkdir -p "$want"
    chmod 755 "$SENTINEL_HOME"
    chown postgres:postgres "$want"
    chmod 700 "$want"
  fi
  if as_postgres test -w "$want" 2>/dev/null; then
    echo "$want"
    return
  fi
  local alt
  alt="/var/tmp/sentinel-postgres-$(echo "$SENTINEL_HOME" | sha256sum | cut -c1-12)"
  warn "postgres user cannot reach $want (a parent folder is closed); cluster kept in $alt"
  mkdir -p "$alt"
  chown postgres:postgres "$alt"
  chmod 700 "$alt"
  rmdir "$want" 2>/dev/null || true
  ln -sfn "$alt" "$want"
  echo "$alt"
}

pg_sql() {  # pg_sql SOCKETDIR SQL -- runs SQL as the postgres superuser over the unix socket
  as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$1" -p "$PG_PORT" -d postgres -tAc "$2"
}

start_postgres() {
  local log pid
  log="$(log_file postgres)"
  if port_open "$PG_PORT"; then
    if pid="$(our_pid postgres "$PG_MARKER")"; then
      ok "postgres already running (ours, pid $pid) on $HOST:$PG_PORT"
    else
      ok "reusing the PostgreSQL server already answering on $HOST:$PG_PORT"
    fi
    return 0
  fi
  apt_install "postgresql-$PG_VERSION"
  need_cmd setpriv util-linux
  local pgdir data sock
  pgdir="$(pg_root)"
  data="$pgdir/data"
  sock="$pgdir/socket"
  as_postgres mkdir -p "$sock"
  if [[ ! -f "$data/PG_VERSION" ]]; then
    info "initdb $data"
    as_postgres "$PG_BIN/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$LOG_DIR/postgres-initdb.log" 2>&1 \
      || die "initdb failed; see $LOG_DIR/postgres-initdb.log"
  fi
  : >>"$log"
  start_bg postgres setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/postgres" -D "$data" \
    -c listen_addresses="$HOST" -c port="$PG_PORT" -c unix_socket_directories="$sock" \
    -c logging_collector=off -c max_connections=200
  wait_until 60 "PostgreSQL on $HOST:$PG_PORT" "$log" \
    "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" || return 1
  ok "postgres started (pid $(cat "$(pid_file postgres)")) on $HOST:$PG_PORT, data $data"
}

stop_postgres() { stop_pid postgres "$PG_MARKER" 60 INT; }  # SIGINT = fast shutdown

sentinel_can_connect() {
  PGPASSWORD=sentinel PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -h "$HOST" -p "$PG_PORT" -U sentinel \
    -d sentinel -tAc 'select 1' >/dev/null 2>&1
}

# role + database `sentinel` (development mode: password `sentinel`, CREATEDB for the test
# databases; loopback only)
bootstrap_postgres() {
  if [[ "$SENTINEL_MODE" == production ]]; then
    info "production mode: role/database are not created here (SENTINEL_DATABASE_URL is used as is)"
    return 0
  fi
  local sock=""
  if our_pid postgres "$PG_MARKER" >/dev/null; then
    sock="$(pg_root)/socket"
  elif [[ -S /var/run/postgresql/.s.PGSQL.$PG_PORT ]]; then
    sock=/var/run/postgresql
  fi
  if [[ -z "$sock" ]]; then
    sentinel_can_connect && { ok "role/database sentinel reachable"; return 0; }
    die "PostgreSQL on $HOST:$PG_PORT is not ours and role 'sentinel' cannot log in to database 'sentinel'; create them or stop that server"
  fi
  pg_sql "$sock" "DO \$\$BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sentinel') THEN
        CREATE ROLE sentinel LOGIN CREATEDB PASSWORD 'sentinel';
      ELSE
        ALTER ROLE sentinel LOGIN CREATEDB PASSWORD 'sentinel';
      END IF;
    END\$\$;" || return 1
  if [[ "$(pg_sql "$sock" "SELECT 1 FROM pg_database WHERE datname = 'sentinel'")" != 1 ]]; then
    pg_sql "$sock" "CREATE DATABASE sentinel OWNER sentinel" || return 1
    info "created database sentinel"
  fi
  sentinel_can_connect || die "role sentinel cannot log in over TCP; see $(log_file postgres)"
  ok "role/database sentinel ready (postgresql://sentinel@$HOST:$PG_PORT/sentinel)"
}

run_migrations() {
  if [[ ! -f "$ROOT/catalog/migrate.py" ]]; then
    warn "catalog/migrate.py does not exist yet: migrations skipped"
    return 0
  fi
  "$PY" -m catalog.migrate || die "catalog migrations failed"
  ok "catalog migrated"
}

ensure_admin_key() {
  if [[ ! -f "$ROOT/catalog/admin_key.py" ]]; then
    warn "catalog/admin_key.py does not exist yet: admin API key not created"
    return 0
  fi
  "$PY" -m catalog.admin_key ensure || die "creating the admin API key failed"
}
