"""Browser test helpers: Debian's headless chromium driven by Selenium, the console's login form, waiting on
the page."""

from __future__ import annotations

import shutil
import time

import pytest
from conftest import OPERATOR

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")  # Debian's (.ci/install-system-deps)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run")
needs_chromium = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver "
                                                                      "(.ci/install-system-deps installs them)")
LOGGED_IN_JS = "return location.pathname === '/' && document.getElementById('operator').textContent"


def chromium(*flags: str):
    """A headless Debian chromium driven by Selenium, with ``flags`` besides the common ones."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, *flags):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.implicitly_wait(0)
    return driver


def log_in(driver, name: str = OPERATOR[0], password: str = OPERATOR[1]) -> None:
    """Fill in and send the console's login form (the page must be showing it)."""
    driver.find_element("id", "name").send_keys(name)
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("id", "login-button").click()


def open_page(driver, url: str) -> None:
    """Load ``url``, again while the console's web server is still starting."""
    for _ in range(50):
        try:
            driver.get(url)
            return
        except Exception:
            time.sleep(0.2)
    driver.get(url)


def wait_js(driver, js: str, seconds: float, what: str, explain=lambda: "", every: float = 0.2):
    """Run ``js`` in the page until it returns something truthy; that value. On a timeout, an AssertionError
    naming ``what`` and what ``explain()`` adds (log tails, page state)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = driver.execute_script(js)
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}{explain()}")
