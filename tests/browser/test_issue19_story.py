"""Issue 19 walked by an admin in a real browser ("Done when"): the company's name, logo and
date format set on Organisation → Company and seen in the navbar and on a customer's page;
a backup taken with "Back up now" and listed as verified; the daily checklist checked with
a green/red word per line; a person's data erased on request with a reason and a TOTP code
(the customer's page then says "(erased)"); and the Company, Backups and System health
pages headed in Chinese.

Skipped without chromium, like the other browser tests (the ``browser`` fixture)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.test_everyday_use import _alerts, _log_in, _open, _submit, _wait

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:  # the ``browser`` fixture skips the test and says why
    By = Select = None

pytestmark = pytest.mark.usefixtures("shanghai")
COMPANY = "华东贸易有限公司"
PERSON, PHONE = "王小明", "13955501234"
CJK = re.compile(r"[\u3400-\u9fff]")
DMY = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})\b")



def _t(app: Any, lang: str, msgid: str) -> str:
    from flask_babel import force_locale, gettext

    with app.test_request_context("/"), force_locale(lang):
        return gettext(msgid)


def _logo(tmp_path: Any) -> str:
    from PIL import Image

    path = tmp_path / "logo.png"
    Image.new("RGB", (48, 24), "navy").save(path, format="PNG")
    return str(path)


def _heading(driver: Any) -> str:
    return driver.find_element(By.CSS_SELECTOR, ".container h3, h3").text.strip()


def test_admin_runs_the_instance(app: Any, browser: Any, live_server: str, make_customer: Any, totp: Any,
                                 backup_dirs: dict) -> None:
    driver, base = browser, live_server
    pk = make_customer("rep_a", name="隐私请求客户", contact_name=PERSON, contact_phone=PHONE)
    totp.enrol(app, "admin")
    _log_in(driver, base, "admin")
    _open(driver, f"{base}/lang/en")
    try:
        # (1) Organisation → Company: name, logo, day/month/year
        _open(driver, f"{base}/company/")
        assert _heading(driver) == "Company profile"
        form = driver.find_element(By.ID, "company-form")
        name = form.find_element(By.ID, "company_name")
        name.clear()
        name.send_keys(COMPANY)
        form.find_element(By.ID, "logo").send_keys(_logo(backup_dirs["files"].parent))
        Select(form.find_element(By.ID, "date_format")).select_by_value("dmy")
        _submit(driver, form)
        assert driver.current_url.rstrip("/").endswith("/company"), _alerts(driver)
        assert "Company settings saved" in _alerts(driver), _alerts(driver)
        assert driver.find_element(By.ID, "logo-preview")
        logo = driver.find_element(By.ID, "company-logo")
        assert "/company/logo" in logo.get_attribute("src")
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", logo) == 48
        assert driver.find_element(By.CSS_SELECTOR, ".navbar .company-name").text == COMPANY
        _open(driver, f"{base}/customerview/show/{pk}")
        assert driver.find_element(By.ID, "company-logo").is_displayed()
        body = driver.find_element(By.TAG_NAME, "body").text
        dates = DMY.findall(body)
        assert dates and all(1 <= int(d) <= 31 and 1 <= int(m) <= 12 for d, m, _ in dates), body[:2000]
        assert not re.search(r"\b\d{4}-\d{2}-\d{2}\b", body), "a date left in ISO form"
        assert PERSON in body

        # (2) Organisation → Backups: back up now, listed ok and verified, a second copy made
        _open(driver, f"{base}/backups/")
        assert _heading(driver) == "Backups"
        _submit(driver, driver.find_element(By.ID, "backup-now").find_element(By.XPATH, "./ancestor::form"))

        def finished(d: Any) -> Any:
            rows = d.find_elements(By.CSS_SELECTOR, "#backup-list tbody tr[id^=backup-]")
            if rows and "Passed" in rows[0].text:
                return rows[0]
            d.refresh()
            return False

        row = _wait(driver).until(finished, "the backup was not listed as verified")
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        assert cells[1] == "Manual" and cells[2].startswith("OK") and cells[5] == "Yes", cells
        assert DMY.search(cells[0]), cells[0]
        checks = row.find_elements(By.CSS_SELECTOR, ".backup-checks li")
        assert checks and all("text-success" in li.get_attribute("class") for li in checks), \
            [li.text for li in checks]
        assert list(backup_dirs["backups"].glob("*")) and list(backup_dirs["copies"].glob("*"))

        # (3) Organisation → Daily checklist: check now, every line green or red in words
        _open(driver, f"{base}/system-health/checklist")
        _submit(driver, driver.find_element(By.ID, "check-now").find_element(By.XPATH, "./ancestor::form"))
        assert "Checklist done" in _alerts(driver), _alerts(driver)
        lines = driver.find_elements(By.CSS_SELECTOR, "#checklist tbody tr[data-key]")
        keys = [line.get_attribute("data-key") for line in lines]
        assert {"backup", "performance", "permissions", "data", "logs"} <= set(keys), keys
        for line in lines:
            word = line.find_element(By.CSS_SELECTOR, ".label").text
            colour = "success" if word == "Green" else "danger" if word == "Red" else None
            assert colour and colour in line.get_attribute("class"), (line.text, line.get_attribute("class"))
        backup_line = next(line for line in lines if line.get_attribute("data-key") == "backup")
        assert backup_line.find_element(By.CSS_SELECTOR, ".label").text == "Green", backup_line.text  # verified, copied
        assert driver.find_elements(By.CSS_SELECTOR, "#checklist-history tbody tr td a")

        # (4) Organisation → Personal data erasure: find, review, reason + code, erased
        _open(driver, f"{base}/erasure/")
        box = driver.find_element(By.ID, "q")
        box.send_keys("隐私请求")
        _submit(driver, driver.find_element(By.ID, "erasure-search"))
        found = driver.find_element(By.ID, "erasure-found").text
        assert "隐私请求客户" in found and PHONE not in found, found
        driver.find_element(By.XPATH, f"//a[contains(@href, 'type=customer') and contains(@href, 'id={pk}')]").click()
        form = _wait(driver).until(lambda d: d.find_element(By.ID, "erasure-form"))
        assert "Contact phone" in driver.find_element(By.ID, "erasure-preview").text
        form.find_element(By.ID, "reason").send_keys("本人来电要求删除个人信息")
        form.find_element(By.CSS_SELECTOR, "input[name=confirm]").click()
        form.find_element(By.ID, "step-up-code").send_keys(totp.code("admin"))
        _submit(driver, form)
        assert _heading(driver) == "Personal data erased", _alerts(driver) + driver.page_source[-1500:]
        _open(driver, f"{base}/customerview/show/{pk}")
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "(erased)" in body and PERSON not in body and PHONE not in body, body[:2000]
        assert "隐私请求客户" in body  # the record stays

        # (5) in Chinese: the Company, Backups and System health pages are headed in Chinese
        _open(driver, f"{base}/lang/zh")
        for url, msgid in (("/company/", "Company profile"), ("/backups/", "Backups"),
                           ("/system-health/", "System health")):
            _open(driver, f"{base}{url}")
            heading = _heading(driver)
            assert CJK.search(heading) and heading.startswith(_t(app, "zh", msgid)), (url, heading)
            assert driver.find_element(By.CSS_SELECTOR, ".navbar .company-name").text == COMPANY
    finally:
        _open(driver, f"{base}/lang/en")
