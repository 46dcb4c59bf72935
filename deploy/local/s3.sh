# shellcheck shell=bash
# Step 5: an S3-protocol server on 127.0.0.1:9000 (moto's server from the venv, in memory) for
# the tests of the s3a:// path. Any access key / secret is accepted.

S3_MARKER="moto_server"

start_s3() {
  local log pid
  log="$(log_file s3)"
  if port_open "$S3_PORT"; then
    if pid="$(our_pid s3 "$S3_MARKER")"; then
      ok "s3 already running (ours, pid $pid) on $HOST:$S3_PORT"
    else
      ok "reusing the S3 server already answering on $HOST:$S3_PORT"
    fi
    return 0
  fi
  [[ -x "$VENV/bin/moto_server" ]] || die "$VENV/bin/moto_server missing (moto[server] is in the dev extra)"
  start_bg s3 "$VENV/bin/moto_server" -H "$HOST" -p "$S3_PORT"
  wait_until 30 "S3 server on $HOST:$S3_PORT" "$log" http_ok "http://$HOST:$S3_PORT/" || return 1
  ok "s3 (moto) started (pid $(cat "$(pid_file s3)")) on http://$HOST:$S3_PORT"
}

stop_s3() { stop_pid s3 "$S3_MARKER" 20 TERM; }
