# shellcheck shell=bash
# Headless Chromium + chromedriver (Debian packages) for the browser tests and the screenshots
# of the Dagster UI and the Superset dashboards (driven by selenium from the venv).

ensure_chromium() {
  apt_install chromium chromium-driver fonts-liberation
  command -v chromium >/dev/null 2>&1 || die "chromium missing after apt-get install (see $LOG_DIR/apt.log)"
  command -v chromedriver >/dev/null 2>&1 || die "chromedriver missing after apt-get install"
  ok "$(chromium --version 2>/dev/null | head -1), $(chromedriver --version | cut -d' ' -f1-2)"
}
