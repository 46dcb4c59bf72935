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
  port_open "${SENTINEL_DAGSTER_PORT:-3000}" \
    && info "the stream starts within ~15 s: http://$HOST:${SENTINEL_DAGSTER_PORT:-3000}/runs"
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
