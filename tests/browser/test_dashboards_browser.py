"""The Sales dashboard in a real browser (issue 17): ECharts draws from the app's own static
files under the CSP, a click on a bar opens the list behind it with the same count, and
the console stays free of errors (CSP violations show there)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.app.services.test_pipeline import _clean_opportunities, add_opportunity  # noqa: F401
from tests.browser.test_everyday_use import _log_in, _open, _wait

try:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
except ImportError:  # the ``browser`` fixture skips the test and says why
    ActionChains = By = None

pytestmark = pytest.mark.usefixtures("shanghai")


def _console_errors(driver: Any) -> list[str]:
    """SEVERE console entries (JS errors, CSP violations, missing assets) since the last call."""
    try:
        entries = driver.get_log("browser")
    except Exception:  # a driver without the log endpoint: nothing to report
        return []
    return [entry["message"] for entry in entries if entry.get("level") == "SEVERE"
            and "favicon" not in entry["message"]]


def _bar_figure(driver: Any) -> dict[str, Any]:
    """A bar figure of the page with drill-down links, counts preferred."""
    found = []
    for script in driver.find_elements(By.CSS_SELECTOR, 'script[type="application/json"][id^="figure-data-"]'):
        fig = json.loads(script.get_attribute("textContent"))
        if fig["chart"] == "bar" and any(fig["links"]) and fig["series"] and fig["series"][0]["values"][0]:
            found.append(fig)
    assert found, "no bar chart with links on the page"
    return sorted(found, key=lambda f: f["unit"] != "count")[0]


def test_manager_clicks_a_bar_to_the_records_behind_it(app: Any, browser: Any, live_server: str,
                                                        make_customer: Any) -> None:
    driver, base = browser, live_server
    with app.app_context():
        for owner, stage, amount in (("rep_a", "proposal", "1000.00"), ("rep_a", "negotiation", "2000.00"),
                                     ("rep_b", "proposal", "500.00")):
            add_opportunity(owner, stage, amount)
    _log_in(driver, base, "manager")
    _console_errors(driver)
    _open(driver, f"{base}/dashboards/manager")
    _wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".crm-chart canvas, .crm-chart svg"),
                        f"no chart drawn: {_console_errors(driver)}")
    charts = driver.find_elements(By.CSS_SELECTOR, ".crm-chart")
    assert charts and all(c.find_elements(By.CSS_SELECTOR, "canvas, svg") for c in charts)
    fig = _bar_figure(driver)
    el = driver.find_element(By.CSS_SELECTOR, f'.crm-chart[data-figure="figure-data-{fig["key"]}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    value = float(fig["series"][0]["values"][0])
    x, y = driver.execute_script(  # the middle of the first bar of the first series
        "var bar = echarts.getInstanceByDom(arguments[0]).getModel().getSeriesByIndex(0).getData().getItemLayout(0);"
        "return [bar.x + bar.width / 2, bar.y + bar.height / 2];", el)
    size = el.size
    ActionChains(driver).move_to_element_with_offset(el, int(x - size["width"] / 2), int(y - size["height"] / 2)) \
        .click().perform()
    _wait(driver).until(lambda d: "/dashboards/drill/" in d.current_url,
                        f"the click on {fig['key']} at {(x, y)} went nowhere: {_console_errors(driver)}")
    assert driver.current_url.endswith(fig["links"][0])
    total = int(driver.find_element(By.ID, "drill-total").get_attribute("textContent"))
    if fig["unit"] == "count":
        assert total == int(value)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#drill-list tbody tr")) == min(total, 50)
    assert _console_errors(driver) == []
