"""A sales rep's everyday round in a real browser (issue 11 §6): log in, add a customer
with the form, add a follow-up from the customer's page with the form's defaults, find the
customer by a phone typed with spaces, and switch the interface to Chinese."""

from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD

try:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the ``browser`` fixture skips the test and says why
    By = ec = WebDriverWait = StaleElementReferenceException = None

WAIT_SECONDS = 20


def _wait(driver: Any) -> WebDriverWait:
    """Waits that try again when the page re-draws an element between finding and reading it
    (a select's results list replaced by the server's answer: a stale reference, once on a
    loaded CI machine)."""
    return WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,))


def _open(driver: Any, url: str) -> None:
    driver.get(url)
    _wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _submit(driver: Any, form: Any) -> None:
    """Submit ``form`` with its own submit button and wait for the next page."""
    button = form.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()
    _wait(driver).until(ec.staleness_of(button))
    _wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _alerts(driver: Any) -> str:
    return " | ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".alert, .help-block"))


def _log_in(driver: Any, base: str, username: str) -> None:
    _open(driver, f"{base}/login/")
    driver.delete_all_cookies()  # the browser is shared by the tests: start logged out
    _open(driver, f"{base}/login/")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    _submit(driver, driver.find_element(By.TAG_NAME, "form"))
    assert "/login" not in driver.current_url, _alerts(driver)


def _add_customer(driver: Any, base: str, name: str, phone: str) -> str:
    """Fill the add form as a person would; returns the customer page's URL."""
    _open(driver, f"{base}/customerview/add")
    form = driver.find_element(By.ID, "model_form")
    form.find_element(By.NAME, "name").send_keys(name)
    form.find_element(By.NAME, "contact_name").send_keys("Zhang Wei")
    form.find_element(By.NAME, "contact_phone").send_keys(phone)
    _submit(driver, form)
    assert "/customerview/add" not in driver.current_url, _alerts(driver)
    _open(driver, f"{base}/customerview/list/")
    link = driver.find_element(By.XPATH, f"//tr[td[contains(., '{name}')]]//a[contains(@href, '/customerview/show/')]")
    return link.get_attribute("href")


def test_rep_round_in_both_languages(browser: Any, live_server: str) -> None:
    driver, base = browser, live_server
    _log_in(driver, base, "rep_a")

    name = "Browser Trading Co"
    customer_url = _add_customer(driver, base, name, "13812345678")

    # A follow-up from the customer's page (its follow-ups tab): one click, customer chosen and shown.
    _open(driver, customer_url)
    driver.find_element(By.CSS_SELECTOR, "#tab-activities a, a#tab-activities").click()
    _wait(driver).until(ec.presence_of_element_located((By.ID, "section-follow_up")))
    tab_url = driver.current_url
    driver.find_element(By.ID, "add-follow-up").click()
    _wait(driver).until(ec.presence_of_element_located((By.ID, "model_form")))
    form = driver.find_element(By.ID, "model_form")
    shown = form.find_element(By.CSS_SELECTOR, "select[name=customer] option:checked").text
    assert name in shown
    assert form.find_element(By.NAME, "followed_at").get_attribute("value"), "the time has a default"
    form.find_element(By.NAME, "content").send_keys("First call: wants a quote")
    _submit(driver, form)
    assert driver.current_url == tab_url, _alerts(driver)
    assert "First call: wants a quote" in driver.page_source

    # The one search box finds it by its phone typed with spaces.
    _open(driver, f"{base}/customerview/list/")
    box = driver.find_element(By.ID, "customer-search-q")
    box.send_keys("138 1234 5678")
    _submit(driver, driver.find_element(By.ID, "customer-search"))
    rows = driver.find_elements(By.XPATH, f"//tr[td[contains(., '{name}')]]")
    assert len(rows) == 1, driver.page_source[-2000:]
    box = driver.find_element(By.ID, "customer-search-q")
    box.clear()
    box.send_keys("138 0000 0000")
    _submit(driver, driver.find_element(By.ID, "customer-search"))
    assert not driver.find_elements(By.XPATH, f"//tr[td[contains(., '{name}')]]")

    # Switch to Chinese with the flag menu.
    _open(driver, f"{base}/customerview/list/")
    driver.find_element(By.CSS_SELECTOR, "a.dropdown-toggle .flag.gb").click()
    link = _wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, "a[href*='/lang/zh']")))
    link.click()
    _wait(driver).until(lambda d: "客户" in d.page_source)
    _open(driver, f"{base}/customerview/list/")
    headers = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "table th")]
    assert "客户名称" in headers, headers
    assert driver.find_element(By.ID, "customer-search-go").text.strip() == "搜索"
