"""Headless Chromium (Debian's chromium + chromedriver, installed by ``make services``)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[1] / ".sentinel" / "test-artifacts"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-extensions", "--no-first-run",
         "--hide-scrollbars"]


@contextmanager
def headless_chromium(width: int = 1600, height: int = 1000) -> Iterator:
    """A selenium WebDriver on the system Chromium; fails with what to run when it is missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver_bin, "chromium/chromedriver missing: run `make services`"
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in [*FLAGS, f"--window-size={width},{height}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def artifact(name: str) -> Path:
    """Where a test saves a screenshot or page dump (kept after the run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def superset_login(driver, base_url: str, password: str, *, attempts: int = 3,
                   wait_seconds: float = 40.0) -> None:
    """Log in as ``admin`` through Superset's login form.

    Superset's login page is drawn by its scripts: a submit that lands before they are ready is
    lost, so the form is filled and sent again (up to ``attempts`` times). Each attempt that
    stays on the login page leaves its screenshot and HTML in the artifacts."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    for attempt in range(1, attempts + 1):
        driver.get(f"{base_url}/login/")
        user = WebDriverWait(driver, 60).until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, "input#username, input[name='username']")))
        user.clear()
        user.send_keys("admin")
        secret = driver.find_element(By.CSS_SELECTOR, "input#password, input[name='password']")
        secret.clear()
        secret.send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "button[type='submit'], input[type='submit']") \
            .click()
        try:
            WebDriverWait(driver, wait_seconds).until(lambda d: "/login" not in d.current_url)
            return
        except TimeoutException:
            driver.save_screenshot(str(artifact(f"superset-login-{attempt}.png")))
            artifact(f"superset-login-{attempt}.html").write_text(driver.page_source)
    raise AssertionError(f"still on Superset's login page after {attempts} attempts "
                         f"(pages saved in {ARTIFACTS})")


# What each chart of a Superset dashboard shows: its title, whether it drew, is empty or
# failed (run in the page by Selenium's execute_script).
CHART_STATE_JS = """
return Array.from(document.querySelectorAll('[data-test="dashboard-component-chart-holder"]'))
  .map(h => ({
    name: ((h.querySelector('[data-test="editable-title"], .header-title') || {}).textContent
           || '').trim(),
    drawn: h.querySelectorAll('canvas, [_echarts_instance_] svg').length,
    empty: /No results/i.test(h.textContent),
    error: !!h.querySelector('.ant-alert-error, [data-test="error-message"]'),
  }));
"""


def settled_charts(driver, at_least: int, timeout: float = 240) -> None:
    """Wait until the open dashboard shows ``at_least`` charts and each has drawn, failed or
    shown no results (or ``timeout`` passed), then for the ECharts animations."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script(CHART_STATE_JS)
        if len(state) >= at_least and all(s["drawn"] or s["error"] or s["empty"] for s in state):
            break
        time.sleep(2)
    time.sleep(3)
