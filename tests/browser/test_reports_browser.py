"""The report builder in a real browser (issue 17 "Done when": a manager builds a level ×
industry report and exports it): the record type fills the dimension lists (report_builder.js),
the preview draws the chart (vendored ECharts, no CDN, no console errors), the xlsx link
downloads a workbook."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_everyday_use import _log_in, _open, _submit, _wait
from tests.browser.test_issue14_new_user import _console_errors
from tests.views.test_reports import book  # noqa: F401  (the customers fixture)

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:  # the ``browser`` fixture skips the test and says why
    By = Select = None

pytestmark = pytest.mark.usefixtures("shanghai")


def _fetch(driver: Any, url: str) -> dict[str, Any]:
    """GET ``url`` from the page (same session): status, content type, size, first bytes."""
    return driver.execute_async_script("""
        var done = arguments[arguments.length - 1];
        fetch(arguments[0], {credentials: "same-origin"}).then(function (r) {
          return r.arrayBuffer().then(function (b) {
            var head = Array.prototype.slice.call(new Uint8Array(b.slice(0, 2)));
            done({status: r.status, type: r.headers.get("Content-Type"), size: b.byteLength, head: head});
          });
        }).catch(function (e) { done({status: 0, type: String(e), size: 0, head: []}); });
    """, url)


def test_manager_builds_previews_and_exports_level_by_industry(browser: Any, live_server: str, book: Any) -> None:  # noqa: F811
    driver = browser
    _log_in(driver, live_server, "manager")
    _open(driver, f"{live_server}/reports/builder")
    _console_errors(driver)
    Select(driver.find_element(By.ID, "source")).select_by_value("customers")
    # report_builder.js filled the dimension lists from the page's JSON
    _wait(driver).until(lambda d: len(Select(d.find_element(By.ID, "dimension1")).options) > 2)
    Select(driver.find_element(By.ID, "dimension1")).select_by_value("level")
    Select(driver.find_element(By.ID, "dimension2")).select_by_value("industry")
    level_in_second = driver.find_element(By.CSS_SELECTOR, "#dimension2 option[value=level]")
    assert level_in_second.get_attribute("disabled")  # the same dimension twice is not offered
    _submit(driver, driver.find_element(By.ID, "report-form"))
    assert "dimensions=level" in driver.current_url and "dimensions=industry" in driver.current_url
    pivot = driver.find_element(By.ID, "report-pivot").text
    assert book["make_en"] in pivot and "Total" in pivot
    _wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".crm-chart canvas, .crm-chart svg"))
    for src in driver.execute_script("return Array.from(document.scripts).map(s => s.src).filter(Boolean)"):
        assert src.startswith(live_server), src  # no CDN
    link = driver.find_element(By.ID, "report-export-xlsx").get_attribute("href")
    answer = _fetch(driver, link)
    assert answer["status"] == 200 and "spreadsheetml" in answer["type"], answer
    assert answer["head"] == [0x50, 0x4B] and answer["size"] > 1000  # a zip: the workbook
    assert _console_errors(driver) == []
