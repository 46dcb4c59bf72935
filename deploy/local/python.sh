# shellcheck shell=bash
# Step 1: the project venv (.venv) with `-e '.[dev,orchestration]'` (uv pip install, else pip).
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

# Built wheels of source-only packages, kept across checkouts (a cache: safe to delete).
WHEELHOUSE="${XDG_CACHE_HOME:-$HOME/.cache}/sentinel/wheels"

# pyspark is published as a source archive only (450 MB wheel once built). uv re-downloads and
# re-builds source archives whose index answers carry no cache validators (~50 s each time), so
# its wheel is built once with pip (pip's own cache makes later calls take seconds) into the
# wheelhouse, where the install finds it.
pyspark_wheel() {
  local version
  version="$(sed -nE 's/^ *"pyspark==([^"]+)".*/\1/p' "$ROOT/pyproject.toml" | head -n 1)"
  [[ -n "$version" ]] || return 0
  compgen -G "$WHEELHOUSE/pyspark-$version-*.whl" >/dev/null && return 0
  mkdir -p "$WHEELHOUSE"
  "$PY" -m pip wheel --no-input -q --no-deps -w "$WHEELHOUSE" "pyspark==$version"
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
  local t0=$SECONDS
  info "install -e '.[${SENTINEL_PIP_EXTRAS:-dev,orchestration}]' (uv, else pip; log: $log)"
  {
    "$PY" -m pip install --no-input -q --upgrade pip &&
      pyspark_wheel &&
      pip_install "$PY" -f "$WHEELHOUSE" -e ".[${SENTINEL_PIP_EXTRAS:-dev,orchestration}]"
  } >"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    die "install failed; see $log"
  }
  venv_wanted_hash >"$(venv_stamp)"
  ok "venv ready in $((SECONDS - t0))s ($VENV)"
}
