"""Headless Chromium for end-to-end tests, driven by Selenium through the system chromedriver.

Only Debian's ``chromium`` and ``chromium-driver`` are used: no browser or driver is downloaded
(Selenium Manager never runs, because the driver's path is given). ``missing_browser`` says why
a test cannot run; tests skip with it, or fail when ``QT_REQUIRE_CHROMIUM=1`` (CI).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

REQUIRE_ENV = "QT_REQUIRE_CHROMIUM"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,1700",
)


def browser_paths() -> tuple[str | None, str | None]:
    """The Chromium and chromedriver executables on PATH (None where missing)."""
    return (
        shutil.which("chromium") or shutil.which("chromium-browser"),
        shutil.which("chromedriver"),
    )


def missing_browser() -> str | None:
    """Why a browser test cannot run here, or None when it can."""
    browser, driver = browser_paths()
    if browser is None or driver is None:
        return (
            "headless Chromium not found (Debian packages chromium and chromium-driver; "
            "python3 dev.py test installs them as root)"
        )
    return None


@contextmanager
def headless_chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, closed when the block ends."""
    browser, driver_path = browser_paths()
    if browser is None or driver_path is None:
        raise RuntimeError(missing_browser())
    with tempfile.TemporaryDirectory(prefix="qt-chromium-") as profile:
        options = Options()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={Path(profile)}")
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()
