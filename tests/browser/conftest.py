"""A real browser against a live server of the app (issue 11: "used page by page in a real
browser in both languages").

Debian's ``chromium`` and ``chromium-driver`` drive it through Selenium, headless. The
server is the suite's own app and test database (``tests/conftest.py``), served by
Werkzeug on a free loopback port in a thread. Without the browser the tests are skipped
with a reason naming the missing binary, and the run ends with a line saying so;
``CRM_BROWSER_TESTS=required`` (set by ``.ci/run``) turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

#: Debian's names first; other distributions' next.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "chromium-driver")
#: Flags for this machine: no sandbox (root in CI), no GPU, and no network of its own
#: (updates, sync, QUIC) beyond the loopback server under test.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=en-US",
)
_SKIPPED: list[str] = []


def _which(names: tuple[str, ...]) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (the missing binary or package), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -r requirements-dev.txt)"
    if _which(BROWSERS) is None:
        return "the chromium binary is missing (apt-get install chromium chromium-driver)"
    if _which(DRIVERS) is None:
        return "the chromedriver binary is missing (apt-get install chromium-driver)"
    return None


@pytest.fixture(scope="session")
def live_server(app: Any) -> Iterator[str]:
    """Base URL of the app served on a free 127.0.0.1 port for the whole session."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium with a new, empty profile; skipped (or failed, when required)
    without the binaries."""
    reason = missing_browser()
    if reason:
        if os.environ.get("CRM_BROWSER_TESTS") == "required":
            pytest.fail(f"browser tests are required here, but {reason}")
        _SKIPPED.append(reason)
        pytest.skip(f"browser test skipped: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _which(BROWSERS)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=_which(DRIVERS)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly, at the end of the run, that the browser tests did not run and why."""
    for reason in dict.fromkeys(_SKIPPED):
        terminalreporter.write_line(f"NOTE: the browser tests (tests/browser) were SKIPPED: {reason}.",
                                    yellow=True, bold=True)
