#!/usr/bin/env bash
# The one-command local stack of Sentinel Lakehouse (no Docker needed).
#
#   stack.sh up        venv, jars, Postgres (+ migrations, admin key), Redis, Kafka, S3,
#                      Spark Thrift Server (SQL endpoint :10000), API,
#                      Dagster (:3000), Superset (:8088, provisioned) and the demo pipeline + producer
#   stack.sh demo | demo-stop   (re)start / stop the demo producer
#   stack.sh services  the same without the API: what the tests need (+ headless Chromium)
#   stack.sh down      stops exactly what these scripts started (pid files in .sentinel/run)
#   stack.sh stop-apps stops what `up` adds to `services` (demo producer, Superset, Dagster and
#                      its streams, API) and leaves the shared services running
#   stack.sh status    one line per service
#   stack.sh logs [S]  tail -F the logs (all, or one service: postgres redis kafka s3 api)
#   stack.sh venv | jars | migrate | superset-provision
#
# Every start is idempotent: a service already answering on its port is reused, not restarted.
# Env: SENTINEL_HOME (default .sentinel), SENTINEL_START_S3=0 skips the S3 server in `up`,
#      SENTINEL_START_SUPERSET=0 skips Superset (:8088) in `up`,
#      SENTINEL_INSTALL_SUPERSET=0 skips its venv in `services`,
#      SENTINEL_KAFKA_HEAP (default "-Xmx512m -Xms256m").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/local/lib.sh
. "$HERE/lib.sh"
for f in python jars chromium postgres redis kafka s3 thrift api dagster superset demo; do
  # shellcheck disable=SC1090
  . "$HERE/$f.sh"
done

SERVICES=(postgres redis kafka s3 thrift api dagster superset demo-producer)

postgres_all() { start_postgres && bootstrap_postgres; }
# dashboards are not worth failing the stack for: say so and go on
provision_superset_soft() {
  provision_superset || warn "superset provisioning failed (see above); retry: make superset-provision"
}
migrate_all() { run_migrations && ensure_admin_key; }

start_services() {
  step "python venv" ensure_venv
  step "jvm jars" ensure_jars
  step "velocity jar" ensure_velocity_jar
  step "spark class archive" start_class_archive
  step "postgres" postgres_all
  step "catalog migrations" migrate_all
  step "redis" start_redis
  step "kafka" start_kafka
  if [[ "${1:-}" == with-s3 || "${SENTINEL_START_S3:-1}" == 1 ]]; then
    step "s3 server" start_s3
  fi
  if [[ "${1:-}" == with-s3 ]]; then
    step "headless chromium" ensure_chromium
    # the Superset tests need its venv; SENTINEL_INSTALL_SUPERSET=0 skips it
    if [[ "${SENTINEL_INSTALL_SUPERSET:-1}" == 1 ]]; then
      step "superset venv" ensure_superset_venv
    fi
  fi
  step "spark class archive (wait)" finish_class_archive
}

summary() {
  local key="$SENTINEL_HOME/admin-api-key"
  echo
  printf '%sSentinel Lakehouse local stack%s (%ss)\n' "$_B" "$_N" "$1"
  if port_open "$API_PORT"; then
    echo "  API        http://$HOST:$API_PORT   docs http://$HOST:$API_PORT/docs"
  else
    echo "  API        not running"
  fi
  port_open "$DAGSTER_PORT" && echo "  Dagster    http://$HOST:$DAGSTER_PORT   (DAGSTER_HOME $DAGSTER_HOME)"
  echo "  Postgres   postgresql://sentinel@$HOST:$PG_PORT/sentinel"
  echo "  Redis      redis://$HOST:$REDIS_PORT/0"
  echo "  Kafka      $HOST:$KAFKA_PORT"
  port_open "$S3_PORT" && echo "  S3         http://$HOST:$S3_PORT (any access key)"
  port_open "$THRIFT_PORT" && echo "  SQL        thrift://$HOST:$THRIFT_PORT (Spark Thrift Server: PyHive, dbt, beeline)"
  port_open "$SUPERSET_PORT" && echo "  Superset   http://$HOST:$SUPERSET_PORT   (user admin, password in $SUPERSET_ADMIN_PASSWORD_FILE)"
  if [[ -f "$key" ]]; then
    echo "  admin key  $key"
  else
    echo "  admin key  not created yet ($key)"
  fi
  echo "  jars       $SENTINEL_HOME/jars/{spark,kafka}"
  echo "  logs:"
  local s
  for s in "${SERVICES[@]}" pip maven apt postgres-initdb kafka-format; do
    [[ -f "$(log_file "$s")" ]] && printf '    %-16s %s\n' "$s" "$(log_file "$s")"
  done
  echo "  stop with: make down    status: make status    logs: make logs [S=kafka]"
  open_first
}

# what a newcomer opens first, and how long the stack took to its first demo alert
open_first() {
  echo
  printf '%sOpen first%s\n' "$_B" "$_N"
  if port_open "$SUPERSET_PORT"; then
    echo "  Live alerts     http://$HOST:$SUPERSET_PORT/superset/dashboard/live-alerts/"
    echo "  Fraud overview  http://$HOST:$SUPERSET_PORT/superset/dashboard/fraud-overview/"
    echo "                  login: admin, password: cat $SUPERSET_ADMIN_PASSWORD_FILE"
  fi
  port_open "$DAGSTER_PORT" && echo "  Dagster runs    http://$HOST:$DAGSTER_PORT/runs"
  port_open "$API_PORT" && echo "  API docs        http://$HOST:$API_PORT/docs" \
    "(key: cat $SENTINEL_HOME/admin-api-key)"
  if [[ -n "$FIRST_ALERT_SECONDS" ]]; then
    echo "  first demo alert ${FIRST_ALERT_SECONDS}s after make up started"
  fi
}

cmd_up() {
  local t0=$SECONDS t0_epoch
  t0_epoch="$(date +%s)"
  start_services
  step "spark thrift server" start_thrift
  step "api" start_api
  step "dagster" start_dagster
  if [[ "${SENTINEL_START_SUPERSET:-1}" == 1 ]]; then
    step "superset" start_superset
    step "superset provisioning" provision_superset_soft
  fi
  step "demo" start_demo
  step "first demo alert + dbt build" first_alert_and_build "$t0_epoch"
  summary "$((SECONDS - t0))"
}

cmd_services() {
  local t0=$SECONDS
  start_services with-s3
  echo
  echo "services ready in $((SECONDS - t0))s (make status for details)"
}

cmd_down() {
  stop_demo
  stop_superset
  stop_dagster
  stop_stream_host
  stop_api
  stop_thrift
  stop_s3
  stop_kafka
  stop_redis
  stop_postgres
}

cmd_status() {
  status_line postgres "$PG_PORT" "$PG_MARKER"
  status_line redis "$REDIS_PORT" "$REDIS_MARKER"
  status_line kafka "$KAFKA_PORT" "$KAFKA_MARKER"
  status_line s3 "$S3_PORT" "$S3_MARKER"
  status_thrift
  status_line api "$API_PORT" "$API_MARKER"
  status_dagster
  status_stream_host
  status_superset
}

cmd_logs() {
  local files=() s
  if [[ -n "${1:-}" ]]; then
    [[ -f "$(log_file "$1")" ]] || die "no log $(log_file "$1") (services: ${SERVICES[*]})"
    files=("$(log_file "$1")")
  else
    for s in "${SERVICES[@]}"; do
      [[ -f "$(log_file "$s")" ]] && files+=("$(log_file "$s")")
    done
  fi
  ((${#files[@]})) || die "no logs yet in $LOG_DIR"
  exec tail -n 40 -F "${files[@]}"
}

case "${1:-}" in
  up) cmd_up ;;
  services) cmd_services ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) cmd_logs "${2:-}" ;;
  demo) step "demo" start_demo ;;
  demo-stop) stop_demo ;;
  stop-apps)
    stop_demo
    stop_superset
    stop_dagster
    stop_stream_host
    stop_api
    ;;
  venv) step "python venv" ensure_venv ;;
  jars)
    step "python venv" ensure_venv
    step "jvm jars" ensure_jars
    step "velocity jar" ensure_velocity_jar
    step "spark class archive" ensure_class_archive
    ;;
  superset-provision) step "superset provisioning" provision_superset ;;
  migrate)
    step "python venv" ensure_venv
    step "postgres" postgres_all
    step "catalog migrations" migrate_all
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
