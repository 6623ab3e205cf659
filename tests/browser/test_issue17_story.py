"""Issue 17 walked by a new sales manager in a real browser, in English and in Chinese ("Done
when"): the Sales dashboard with the department's funnel (conversion in %), a chart drawn
from the app's own ECharts without console errors, a bar clicked to the records behind it
(same number), a figure without data saying so instead of bare axes, the level × industry
report previewed and exported to xlsx (pivot with the level header) and PDF (Chinese text),
and the page usable on a phone (no horizontal scrolling).

Skipped without chromium, like the other browser tests (the ``browser`` fixture)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.dictionaries import CustomerLevel, Industry
from tests.app.services.test_pipeline import _clean_opportunities, add_opportunity  # noqa: F401
from tests.browser.test_everyday_use import _log_in, _open, _wait
from tests.browser.test_issue14_new_user import _console_errors

try:
    from selenium.webdriver.common.by import By
except ImportError:  # the ``browser`` fixture skips the test and says why
    By = None

pytestmark = pytest.mark.usefixtures("shanghai")
REPORT = "source=customers&dimensions=level&dimensions=industry&measure=count&chart=bar"
CJK = re.compile(r"[\u3400-\u9fff]")


def _t(app: Any, lang: str, msgid: str) -> str:
    from flask_babel import force_locale, gettext

    with app.test_request_context("/"), force_locale(lang):
        return gettext(msgid)


def _session(driver: Any) -> Any:
    import requests

    session = requests.Session()
    for cookie in driver.get_cookies():
        session.cookies.set(cookie["name"], cookie["value"])
    return session


def _data(app: Any, make_customer: Any) -> None:
    with app.app_context():
        level = db.session.scalars(select(CustomerLevel).order_by(CustomerLevel.id)).first()
        industry = db.session.scalars(select(Industry).order_by(Industry.id)).first()
        level_id, industry_id = (level.id if level else None), (industry.id if industry else None)
        for owner, stage, amount in (("rep_a", "proposal", "1000.00"), ("rep_a", "negotiation", "2000.00"),
                                     ("rep_b", "proposal", "500.00")):
            add_opportunity(owner, stage, amount)
        db.session.commit()
    for n in range(3):
        make_customer("rep_a", name=f"Story customer {n}", level_id=level_id, industry_id=industry_id)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_manager_first_morning(app: Any, browser: Any, live_server: str, make_customer: Any, lang: str) -> None:
    driver, base = browser, live_server
    _data(app, make_customer)
    _log_in(driver, base, "manager")
    _open(driver, f"{base}/lang/{lang}")
    _console_errors(driver)
    try:
        # the dashboard: funnel drawn, its conversion column in %, no console error
        _open(driver, f"{base}/dashboards/manager")
        assert driver.find_element(By.ID, "dashboard-title").text == _t(app, lang, "Sales dashboard")
        _wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#figure-funnel .crm-chart canvas"),
                            f"funnel not drawn: {_console_errors(driver)}")
        rows = driver.find_elements(By.CSS_SELECTOR, "#figure-funnel tbody tr")
        rates = [r.find_elements(By.TAG_NAME, "td")[-1].text for r in rows]
        assert rates[0] == "–" and all(r == "–" or r.endswith("%") for r in rates[1:]), rates
        # a figure with nothing to draw says so (the test data has no ticket, order or churn)
        empty = driver.find_elements(By.CSS_SELECTOR, ".crm-figure-empty")
        assert all(e.text.strip().endswith(_t(app, lang, "No data for this period.")) for e in empty)
        assert not driver.find_elements(By.CSS_SELECTOR, ".crm-figure:has(.crm-figure-empty) .crm-chart")
        # no holes in the grid: every figure lies inside the page, side by side on a wide window
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        # the stage bar clicked (its table link, what the bar's click follows) lists the same number
        link = driver.find_element(By.CSS_SELECTOR, "#figure-funnel tbody tr:nth-child(3) a.crm-drill")
        number = driver.find_element(By.CSS_SELECTOR, "#figure-funnel tbody tr:nth-child(3) td").text
        link.click()
        _wait(driver).until(lambda d: "/dashboards/drill/funnel" in d.current_url)
        assert driver.find_element(By.ID, "drill-total").get_attribute("textContent") == number
        assert len(driver.find_elements(By.CSS_SELECTOR, "#drill-list tbody tr")) == int(number)
        # the level × industry report, exported
        _open(driver, f"{base}/reports/builder?{REPORT}")
        assert not _console_errors(driver)
        session = _session(driver)
        book = session.get(f"{base}/reports/export/xlsx?{REPORT}")
        assert book.status_code == 200, book.text[:300]
        import openpyxl

        sheet = openpyxl.load_workbook(io.BytesIO(book.content)).worksheets[0]
        cells = [c for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
        assert _t(app, lang, "Level") in [str(c) for c in cells] or any(
            _t(app, lang, "Level") in str(c) for c in cells)
        pdf = session.get(f"{base}/reports/export/pdf?{REPORT}")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        from pypdf import PdfReader

        text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
        assert _t(app, lang, "Customers") in text
        if lang == "zh":
            assert CJK.search(text)
        # on a phone the dashboard scrolls down, not sideways
        driver.set_window_size(390, 844)
        _open(driver, f"{base}/dashboards/manager")
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert not _console_errors(driver)
    finally:
        driver.set_window_size(1280, 1000)
        _open(driver, f"{base}/lang/en")
