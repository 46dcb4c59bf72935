# shellcheck shell=bash disable=SC2034
# Shared helpers of the local stack scripts (sourced, never run).
#
# Conventions
#   - every runtime file lives under $SENTINEL_HOME (default <repo>/.sentinel):
#       logs/<service>.log, run/<service>.pid, stamps/, jars/, postgres/, redis/, kafka/, ...
#   - a service whose port already answers is reused and left alone; only services we start
#     get a pid file, and `stack.sh down` stops exactly those.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ROOT
cd "$ROOT" || exit 1

# .env (git-ignored) may set SENTINEL_* for the scripts too.
if [[ -f "$ROOT/.env" ]]; then
  set -a
  # shellcheck disable=SC1091
  . "$ROOT/.env"
  set +a
fi

export SENTINEL_HOME="${SENTINEL_HOME:-$ROOT/.sentinel}"
export SENTINEL_MODE="${SENTINEL_MODE:-development}"
LOG_DIR="$SENTINEL_HOME/logs"
RUN_DIR="$SENTINEL_HOME/run"
STAMP_DIR="$SENTINEL_HOME/stamps"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

# Loopback ports. The defaults are what the app's settings expect; the overrides exist to run a
# second stack beside the first (e.g. to try the scripts from a fresh checkout).
HOST=127.0.0.1
PG_PORT="${SENTINEL_PG_PORT:-5432}"
REDIS_PORT="${SENTINEL_REDIS_PORT:-6379}"
KAFKA_PORT="${SENTINEL_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${SENTINEL_KAFKA_CONTROLLER_PORT:-9093}"
S3_PORT="${SENTINEL_S3_PORT:-9000}"
API_PORT="${SENTINEL_API_PORT:-8000}"

mkdir -p "$LOG_DIR" "$RUN_DIR" "$STAMP_DIR"

# ---------------------------------------------------------------- output

if [[ -t 1 ]]; then
  _B=$'\033[1m' _G=$'\033[32m' _Y=$'\033[33m' _R=$'\033[31m' _N=$'\033[0m'
else
  _B='' _G='' _Y='' _R='' _N=''
fi

info() { printf '    %s\n' "$*"; }
ok()   { printf '    %s%s%s\n' "$_G" "$*" "$_N"; }
warn() { printf '    %sWARNING:%s %s\n' "$_Y" "$_N" "$*" >&2; }
die()  { printf '%sERROR:%s %s\n' "$_R" "$_N" "$*" >&2; exit 1; }

# step "title" cmd args...  -- runs a step under `set -e` and prints its duration; a failing
# command stops the script and the EXIT trap names the step.
_STEP=""
step() {
  local title="$1"; shift
  local t0=$SECONDS
  printf '%s==> %s%s\n' "$_B" "$title" "$_N"
  _STEP="$title"
  "$@"
  _STEP=""
  printf '    (%s: %ss)\n' "$title" "$((SECONDS - t0))"
}
_on_exit() {
  local rc=$?
  if ((rc != 0)) && [[ -n "$_STEP" ]]; then
    printf '%sERROR:%s step "%s" failed (exit %s); logs are in %s\n' "$_R" "$_N" "$_STEP" "$rc" \
      "$LOG_DIR" >&2
  fi
}
trap _on_exit EXIT

# ---------------------------------------------------------------- processes and ports

# port_open PORT [HOST] -- true when something accepts TCP connections there.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/${2:-$HOST}/$1" 2>/dev/null
}

pid_file() { echo "$RUN_DIR/$1.pid"; }
log_file() { echo "$LOG_DIR/$1.log"; }

# our_pid NAME MARKER -- prints the pid from NAME's pid file when that process is alive and
# its command line contains MARKER (so a recycled pid is never taken for ours).
our_pid() {
  local f pid
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(head -n1 "$f" 2>/dev/null | tr -dc '0-9')"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}

# wait_until TIMEOUT_S WHAT LOG CMD... -- polls CMD until it succeeds; on timeout fails naming LOG.
wait_until() {
  local timeout="$1" what="$2" log="$3"; shift 3
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - t0 >= timeout)); then
      printf '%sERROR:%s %s not ready after %ss; see %s\n' "$_R" "$_N" "$what" "$timeout" "$log" >&2
      [[ -f "$log" ]] && { echo "---- last lines of $log ----" >&2; tail -n 25 "$log" >&2; }
      return 1
    fi
    sleep 1
  done
}

# start_bg NAME CMD... -- starts CMD detached (own session), output appended to the
# service log, pid written by the process itself before it execs CMD.
start_bg() {
  local name="$1"; shift
  local log pidf
  log="$(log_file "$name")"
  pidf="$(pid_file "$name")"
  printf '\n==== %s start %s ====\n' "$name" "$(date -Is)" >>"$log"
  # shellcheck disable=SC2016  # $$ and $0 belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" >>"$log" 2>&1 </dev/null &
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do [[ -s "$pidf" ]] && break; sleep 0.2; done
}

# stop_pid NAME MARKER [TIMEOUT] [SIGNAL] -- SIGNAL (default TERM; KILL after TIMEOUT s) to
# the process of our pid file, if it is ours.
stop_pid() {
  local name="$1" marker="$2" timeout="${3:-30}" sig="${4:-TERM}" pid t0
  if ! pid="$(our_pid "$name" "$marker")"; then
    if [[ -f "$(pid_file "$name")" ]]; then
      info "$name: not running (stale pid file removed)"
      rm -f "$(pid_file "$name")"
    else
      info "$name: no pid file (not started by these scripts), nothing to stop"
    fi
    return 0
  fi
  kill -"$sig" "$pid" 2>/dev/null || true
  t0=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - t0 >= timeout)); then
      warn "$name (pid $pid) ignored TERM for ${timeout}s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
  rm -f "$(pid_file "$name")"
  ok "$name: stopped (pid $pid)"
}

# status_line NAME PORT MARKER -- one line for `make status`.
status_line() {
  local name="$1" port="$2" marker="$3" state pid
  if port_open "$port"; then state="up"; else state="down"; fi
  if pid="$(our_pid "$name" "$marker")"; then
    :
  elif [[ "$state" == up ]]; then
    pid="external"
  else
    pid="-"
  fi
  printf '%-9s %-5s %s:%-6s pid=%-9s log=%s\n' "$name" "$state" "$HOST" "$port" "$pid" \
    "$(log_file "$name")"
}

# ---------------------------------------------------------------- apt

_APT_UPDATED=0
# apt_install PKG... -- installs the missing packages without letting their maintainer scripts
# start system services (policy-rc.d answers 101 "action forbidden" during the install).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $EUID -eq 0 ]] || die "need root to apt-get install ${missing[*]} (or install them yourself)"
  info "apt: installing ${missing[*]}"
  if ((_APT_UPDATED == 0)); then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$LOG_DIR/apt.log" 2>&1 \
      || die "apt-get update failed; see $LOG_DIR/apt.log"
    _APT_UPDATED=1
  fi
  local policy=/usr/sbin/policy-rc.d created=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# written by sentinel deploy/local/lib.sh during apt-get install\nexit 101\n' \
      >"$policy"
    chmod 755 "$policy"
    created=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >>"$LOG_DIR/apt.log" 2>&1 || rc=$?
  ((created)) && rm -f "$policy"
  ((rc == 0)) || die "apt-get install ${missing[*]} failed; see $LOG_DIR/apt.log"
}

# need_cmd CMD PKG -- installs PKG with apt when CMD is missing.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing $2"
}

# http_ok URL -- true when URL answers 2xx within 3 s (uses the venv's python: no curl needed).
http_ok() {
  "$PY" - "$1" <<'PYEOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
    sys.exit(0 if 200 <= r.status < 300 else 1)
PYEOF
}

sha_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- python packages

UV_VERSION=0.13.8
# pip_install PY ARGS... -- installs ARGS (pip's syntax: -e '.[x]', -r FILE) into the venv of
# interpreter PY with uv (pinned; put into that venv by pip first), which resolves and installs
# several times faster than pip; falls back to pip when uv cannot be had or fails, and always
# uses pip with SENTINEL_INSTALLER=pip. uv gets pip's CA bundle (PIP_CERT or pip.conf's `cert`)
# and find-links, so that it works behind the same TLS proxy as pip.
pip_install() {
  local py="$1"
  shift
  local uv="${py%/*}/uv"
  if [[ "${SENTINEL_INSTALLER:-uv}" == uv ]]; then
    if [[ ! -x "$uv" ]] || [[ "$("$uv" --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
      "$py" -m pip install --no-input -q "uv==$UV_VERSION" || warn "could not install uv: using pip"
    fi
    if [[ -x "$uv" ]]; then
      local cert="${SSL_CERT_FILE:-${PIP_CERT:-$("$py" -m pip config get global.cert 2>/dev/null)}}"
      local -a env=()
      [[ -n "$cert" && -f "$cert" ]] && env+=("SSL_CERT_FILE=$cert")
      [[ -n "${PIP_FIND_LINKS:-}" ]] && env+=("UV_FIND_LINKS=$PIP_FIND_LINKS")
      if env "${env[@]}" "$uv" pip install --python "$py" "$@"; then
        return 0
      fi
      warn "uv pip install failed: trying pip"
    fi
  fi
  "$py" -m pip install --no-input "$@"
}
