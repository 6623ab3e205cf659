"""The AJAX related select in a real browser (issue 12): on the follow-up add form a rep
types part of a customer's name into the customer field, picks the match the server
offers, and the follow-up is saved for that customer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import FollowUp
from tests.browser.test_everyday_use import _alerts, _log_in, _open, _submit, _wait

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
except ImportError:  # the ``browser`` fixture skips the test and says why
    By = ec = None


def test_rep_types_and_picks_a_customer(app: Any, browser: Any, live_server: str, make_customer: Any) -> None:
    driver, base = browser, live_server
    wanted = make_customer("rep_a", name="Typeahead Trading Co")
    make_customer("rep_a", name="Other Company Ltd")
    _log_in(driver, base, "rep_a")
    _open(driver, f"{base}/followupview/add")
    form = driver.find_element(By.ID, "model_form")
    assert form.find_elements(By.CSS_SELECTOR, "select[name=customer] option[value]:not([value=''])") == []

    field = form.find_element(By.CSS_SELECTOR, "select[name=customer] + .select2 .select2-selection")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
    field.click()
    search = _wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".select2-search__field")))
    search.send_keys("Typeahead")
    # the server's answer for the typed text replaces the first page: only the match is offered
    _wait(driver).until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, ".select2-results__option")]
                        == [d.find_element(By.XPATH, "//li[contains(., 'Typeahead Trading Co')]").text])
    driver.find_element(By.XPATH, "//li[contains(@class, 'select2-results__option')"
                                  " and contains(., 'Typeahead Trading Co')]").click()
    assert driver.execute_script("return document.querySelector('select[name=customer]').value") == str(wanted)

    form.find_element(By.NAME, "content").send_keys("Picked from the typeahead")
    _submit(driver, form)
    assert "/followupview/add" not in driver.current_url, _alerts(driver)
    with app.app_context():
        saved = db.session.scalars(select(FollowUp)).all()
        assert [(f.customer_id, f.content) for f in saved] == [(wanted, "Picked from the typeahead")]
        db.session.remove()
