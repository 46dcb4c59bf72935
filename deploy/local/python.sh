# shellcheck shell=bash
# Step 1: the project venv (.venv) with `pip install -e '.[dev,orchestration]'`.
# Skipped when .venv exists and pyproject.toml (and the interpreter) did not change since the
# last successful install (stamp: $SENTINEL_HOME/stamps/venv.sha256).

venv_stamp() { echo "$STAMP_DIR/venv.sha256"; }

venv_wanted_hash() {
  { cat "$ROOT/pyproject.toml"; python3 --version; echo "extras=${SENTINEL_PIP_EXTRAS:-dev,orchestration}"; } \
    | sha256sum | cut -d' ' -f1
}

venv_up_to_date() {
  [[ -x "$PY" ]] && [[ -f "$(venv_stamp)" ]] && [[ "$(cat "$(venv_stamp)")" == "$(venv_wanted_hash)" ]]
}

ensure_venv() {
  need_cmd python3 python3
  if venv_up_to_date; then
    ok "venv up to date ($VENV)"
    return 0
  fi
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  [[ -x "$PY" ]] || python3 -m venv "$VENV"
  local log="$LOG_DIR/pip.log"
  info "pip install -e '.[${SENTINEL_PIP_EXTRAS:-dev,orchestration}]' (log: $log)"
  {
    "$PY" -m pip install --upgrade pip &&
      "$PY" -m pip install -e ".[${SENTINEL_PIP_EXTRAS:-dev,orchestration}]"
  } >"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    die "pip install failed; see $log"
  }
  venv_wanted_hash >"$(venv_stamp)"
  ok "venv ready ($VENV)"
}
