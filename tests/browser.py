"""Headless Chromium (Debian's chromium + chromedriver, installed by ``make services``)."""

from __future__ import annotations

import shutil
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
