# shellcheck shell=bash
# Step 8: the demo -- the seed's "Payment Transactions" pipeline (topic `transactions`) with its
# two rules, active, created through the API with the admin key (looked up first: idempotent),
# and a producer sending ~5 events/s to it in the background (pid file demo-producer.pid).
# The pipeline_watcher sensor then starts its stream by itself.
#   start_demo   needs the API (and Dagster for the stream)      stop_demo   stops the producer

DEMO_MARKER="streaming.producer"
DEMO_RATE="${SENTINEL_DEMO_RATE:-5}"

# ensure_demo_pipeline -- prints the demo pipeline's id (creates / re-activates it when needed)
ensure_demo_pipeline() {
  "$PY" - "http://$HOST:$API_PORT" "$SENTINEL_HOME/admin-api-key" <<'PYEOF'
import sys
import httpx

base, key_file = sys.argv[1], sys.argv[2]
headers = {"X-API-Key": open(key_file).read().strip()}
PIPELINE = {
    "name": "Payment Transactions",
    "kafka_topic": "transactions",
    "key_field": "transaction_id",
    "schema": [
        {"name": "transaction_id", "type": "string", "nullable": False},
        {"name": "user_id", "type": "integer", "nullable": False},
        {"name": "amount", "type": "float", "nullable": False},
        {"name": "currency", "type": "string", "nullable": False},
        {"name": "timestamp", "type": "timestamp", "nullable": False},
    ],
}
RULES = [
    {"rule_expression": "amount > 5000", "severity": "critical",
     "description": "Large Transaction Alert"},
    {"rule_expression": "currency != 'USD'", "severity": "warning",
     "description": "Non-USD Transaction"},
]
with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
    found = [p for p in api.get("/api/pipelines").raise_for_status().json()
             if p["name"] == PIPELINE["name"] or p["kafka_topic"] == PIPELINE["kafka_topic"]]
    if found:
        pid = found[0]["id"]
        if found[0]["status"] != "active":
            api.patch(f"/api/pipelines/{pid}/status", json={"status": "active"}).raise_for_status()
    else:
        pid = api.post("/api/pipelines", json=PIPELINE).raise_for_status().json()["id"]
    have = {r["rule_expression"] for r in api.get(f"/api/pipelines/{pid}/rules").json()}
    for rule in RULES:
        if rule["rule_expression"] not in have:
            api.post(f"/api/pipelines/{pid}/rules", json=rule).raise_for_status()
print(pid)
PYEOF
}

start_demo() {
  local pid id
  if ! http_ok "http://$HOST:$API_PORT/healthz"; then
    warn "API not answering on $HOST:$API_PORT: demo skipped"
    return 0
  fi
  [[ -f "$SENTINEL_HOME/admin-api-key" ]] || { warn "no admin key yet: demo skipped"; return 0; }
  if ! id="$(ensure_demo_pipeline)"; then  # the demo must never fail `make up`
    warn "could not ensure the demo pipeline (is $SENTINEL_HOME/admin-api-key valid?): demo skipped"
    return 0
  fi
  ok "demo pipeline 'Payment Transactions' is active (id $id, topic transactions, seed rules present)"
  if pid="$(our_pid demo-producer "$DEMO_MARKER")"; then
    ok "demo producer already running (pid $pid)"
    return 0
  fi
  # the producer sends a finite batch; the loop keeps it going (new seed = new event ids)
  start_bg demo-producer bash -c "while :; do '$PY' -m streaming.producer --pipeline-id $id \
    --rate $DEMO_RATE --count $((DEMO_RATE * 600)) || sleep 10; done"
  ok "demo producer started (pid $(cat "$(pid_file demo-producer)"), $DEMO_RATE events/s)," \
    "log $(log_file demo-producer)"
  # without Dagster (`make demo` on `make services`) nothing starts the stream: not a failure
  if port_open "${SENTINEL_DAGSTER_PORT:-3000}"; then
    info "the stream starts within ~15 s: http://$HOST:${SENTINEL_DAGSTER_PORT:-3000}/runs"
  fi
}

# stops the loop and the producer it is running (one process group)
stop_demo() {
  local pid
  if pid="$(our_pid demo-producer "$DEMO_MARKER")"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    sleep 1
    kill -0 -- "-$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
    rm -f "$(pid_file demo-producer)"
    ok "demo producer stopped (pid $pid)"
  else
    stop_pid demo-producer "$DEMO_MARKER" 5 TERM
  fi
}

# wait_first_alert ID SINCE_EPOCH -- waits (SENTINEL_FIRST_ALERT_TIMEOUT, 300 s) for an alert of
# pipeline ID raised at or after SINCE_EPOCH; prints its age in seconds since SINCE_EPOCH and
# its event time, or fails on the timeout
wait_first_alert() {
  "$PY" - "http://$HOST:$API_PORT" "$SENTINEL_HOME/admin-api-key" "$1" "$2" \
    "${SENTINEL_FIRST_ALERT_TIMEOUT:-300}" <<'PYEOF'
import sys, time
from datetime import UTC, datetime
import httpx

base, key_file, pid, since, timeout = sys.argv[1:6]
since_ts = datetime.fromtimestamp(float(since), UTC)
headers = {"X-API-Key": open(key_file).read().strip()}
deadline = time.monotonic() + float(timeout)
with httpx.Client(base_url=base, headers=headers, timeout=10) as api:
    while time.monotonic() < deadline:
        rows = api.get("/api/alerts", params={"pipeline_id": pid, "limit": 1,
                                              "since": since_ts.isoformat()}).json()
        if rows:
            at = datetime.fromisoformat(rows[0]["alert_timestamp"])
            print(f"{max(0, (at - since_ts).total_seconds()):.0f} {rows[0]['event_time']}")
            sys.exit(0)
        time.sleep(2)
sys.exit(1)
PYEOF
}

# first_lakehouse_build -- launches Dagster's build_lakehouse_models for today (UTC) when it has
# never run on this instance, so the marts (and the Fraud Overview charts) exist within minutes
# instead of at the lake-change sensor's next tick; prints the run id, or "exists" when a build
# already ran or is running
first_lakehouse_build() {
  "$PY" - "$HOST" "${SENTINEL_DAGSTER_PORT:-3000}" <<'PYEOF'
import sys
from datetime import UTC, datetime
from dagster_graphql import DagsterGraphQLClient

JOB = "build_lakehouse_models"
client = DagsterGraphQLClient(sys.argv[1], port_number=int(sys.argv[2]), timeout=60)
runs = client._execute(
    "query($f: RunsFilter) { runsOrError(filter: $f, limit: 1) "
    "{ ... on Runs { results { runId } } } }", {"f": {"pipelineName": JOB}})
if runs["runsOrError"].get("results"):
    print("exists")
    sys.exit(0)
today = datetime.now(UTC).date().isoformat()
print(client.submit_job_execution(JOB, repository_location_name="orchestration.definitions",
                                  tags={"dagster/partition": today, "sentinel/kind": "dbt",
                                        "sentinel/trigger": "make_up"}))
PYEOF
}

# first_alert_and_build T0 -- after start_demo: the time from T0 (epoch s) to the demo's first
# alert (FIRST_ALERT_SECONDS), then the first lakehouse build
FIRST_ALERT_SECONDS=""
first_alert_and_build() {
  local id out run
  if ! http_ok "http://$HOST:$API_PORT/healthz" || [[ ! -f "$SENTINEL_HOME/admin-api-key" ]]; then
    warn "API not answering: no demo alert to wait for"
    return 0
  fi
  id="$(ensure_demo_pipeline)" || { warn "no demo pipeline: no alert to wait for"; return 0; }
  info "waiting for the demo's first alert (up to ${SENTINEL_FIRST_ALERT_TIMEOUT:-300} s)"
  if out="$(wait_first_alert "$id" "$1")"; then
    FIRST_ALERT_SECONDS="${out%% *}"
    ok "first demo alert ${FIRST_ALERT_SECONDS}s after make up started (event time ${out#* })"
  else
    warn "no demo alert yet; see $(log_file dagster) and http://$HOST:$DAGSTER_PORT/runs"
  fi
  port_open "$DAGSTER_PORT" || return 0
  if run="$(first_lakehouse_build 2>>"$(log_file dagster)")"; then
    if [[ "$run" == exists ]]; then
      ok "lakehouse models: a dbt build already ran (the sensors keep the marts current)"
    else
      ok "first lakehouse build launched (run $run): marts in a few minutes, then Dagster" \
        "provisions Superset again by itself"
    fi
  else
    warn "could not launch the first dbt build; the lake-change sensor builds within 10 min"
  fi
}
