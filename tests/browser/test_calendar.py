"""Activities in a real browser (issue 14): the calendar draws FullCalendar from the app's
own static files under the CSP and shows the rep's activity this month; picking a task
template on the activity form fills the subject and the note."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete

from app import clock
from app.extensions import db
from app.models import Activity
from app.models.activities import ActivityTemplate
from app.services import activities
from tests.browser.test_everyday_use import _log_in, _open, _wait
from tests.conftest import user_id

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
except ImportError:  # the ``browser`` fixture skips the test and says why
    By = ec = None

SUBJECT = "Browser calendar call"


def _clean(app: Any) -> None:
    with app.app_context():
        db.session.execute(delete(Activity))
        db.session.execute(delete(ActivityTemplate))
        activities.seed_templates()  # as initialise() left them
        db.session.commit()
        db.session.remove()


def test_the_calendar_shows_todays_activity(app: Any, browser: Any, live_server: str, make_customer: Any) -> None:
    driver, base = browser, live_server
    customer = make_customer("rep_a")
    with app.app_context():
        due = clock.from_local(datetime.combine(clock.local_today(), datetime.min.time()) + timedelta(hours=15))
        db.session.add(Activity(kind="call", subject=SUBJECT, due_at=due, assignee_id=user_id("rep_a"),
                                customer_id=customer, status="open"))
        db.session.commit()
        db.session.remove()
    try:
        _log_in(driver, base, "rep_a")
        _open(driver, f"{base}/activityview/calendar/")
        _wait(driver).until(lambda d: any(SUBJECT in e.text for e in d.find_elements(By.CSS_SELECTOR, ".fc-event")))
        assert driver.find_elements(By.CSS_SELECTOR, ".fc-dayGridMonth-button")
        assert "hidden" in driver.find_element(By.ID, "calendar-message").get_attribute("class")
    finally:
        _clean(app)


def test_a_template_fills_the_activity_form(app: Any, browser: Any, live_server: str) -> None:
    driver, base = browser, live_server
    with app.app_context():
        activities.seed_templates()
        db.session.commit()
        db.session.remove()
    try:
        _log_in(driver, base, "rep_a")
        _open(driver, f"{base}/activityview/add")
        field = driver.find_element(By.CSS_SELECTOR, "select[name=template] + .select2 .select2-selection")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
        field.click()
        search = _wait(driver).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".select2-search__field")))
        search.send_keys("产品")
        _wait(driver).until(lambda d: d.find_elements(By.XPATH, "//li[contains(@class, 'select2-results__option')"
                                                                " and contains(., '产品介绍')]"))
        driver.find_element(By.XPATH, "//li[contains(@class, 'select2-results__option')"
                                      " and contains(., '产品介绍')]").click()
        _wait(driver).until(lambda d: d.find_element(By.NAME, "subject").get_attribute("value") == "产品介绍")
        assert driver.find_element(By.NAME, "note").get_attribute("value").startswith("上门或线上演示产品")
        assert driver.find_element(By.NAME, "kind").get_attribute("value") == "visit"
    finally:
        _clean(app)
