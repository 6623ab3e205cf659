"""Issue 14 as a new user in a real browser (helper attack14): rep_a opens the home page,
plans an activity from a customer's page, finds it in My activities and the calendar
(month and week, English and Chinese), marks it done with an outcome, records a follow-up
whose next step plans an activity at 09:00 CRM time, opens the bell, reads a notification
and changes the notification settings and language. No JS error or CSP violation on the way."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import Activity, FollowUp, Notification
from app.models.org import CrmUser
from app.services import notifications
from tests.browser.test_everyday_use import _alerts, _log_in, _open, _submit, _wait
from tests.conftest import user_id

try:
    from selenium.webdriver.common.by import By
except ImportError:  # the ``browser`` fixture skips the test and says why
    By = None

SUBJECT = "New user first call"


pytestmark = pytest.mark.usefixtures("shanghai")


def _console_errors(driver: Any) -> list[str]:
    """SEVERE console entries (JS errors, CSP violations, missing assets) since the last call."""
    try:
        entries = driver.get_log("browser")
    except Exception:  # a driver without the log endpoint: nothing to report
        return []
    return [entry["message"] for entry in entries if entry.get("level") == "SEVERE"
            and "favicon" not in entry["message"]]


def _calendar_events(driver: Any) -> str:
    _wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".fc-view-harness"))
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".fc-event"))


def test_plan_from_the_customer_page_then_mine_and_calendar_in_both_languages(
        app: Any, browser: Any, live_server: str, make_customer: Any) -> None:
    driver, base = browser, live_server
    customer = make_customer("rep_a", name="新用户客户")
    _log_in(driver, base, "rep_a")
    _console_errors(driver)
    _open(driver, f"{base}/")
    assert driver.find_elements(By.XPATH, "//*[contains(., 'My activities') or contains(., 'activities')]")

    _open(driver, f"{base}/customerview/show/{customer}")
    driver.find_element(By.ID, "plan-activity").click()
    _wait(driver).until(lambda d: "/activityview/add" in d.current_url)
    form = driver.find_element(By.ID, "model_form")
    form.find_element(By.NAME, "subject").send_keys(SUBJECT)
    _submit(driver, form)
    assert "/activityview/add" not in driver.current_url, _alerts(driver)
    with app.app_context():
        item = db.session.scalars(select(Activity)).one()
        assert item.customer_id == customer and item.assignee_id == user_id("rep_a")
        due_local = clock.to_local(item.due_at)

    _open(driver, f"{base}/activityview/mine/")
    if due_local.date() <= clock.local_today() + timedelta(days=7):
        assert SUBJECT in driver.page_source

    _open(driver, f"{base}/activityview/calendar/?initialDate={due_local.date().isoformat()}")
    _wait(driver).until(lambda d: SUBJECT in _calendar_events(d))
    driver.find_element(By.CSS_SELECTOR, ".fc-timeGridWeek-button, .fc-dayGridWeek-button, .fc-listWeek-button").click()
    _wait(driver).until(lambda d: SUBJECT in _calendar_events(d))
    errors_en = _console_errors(driver)

    _open(driver, f"{base}/lang/zh")
    _open(driver, f"{base}/activityview/calendar/")
    _wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".fc-toolbar"))
    toolbar = driver.find_element(By.CSS_SELECTOR, ".fc-toolbar").text
    _open(driver, f"{base}/activityview/mine/")
    mine_zh = driver.find_element(By.TAG_NAME, "body").text
    errors_zh = _console_errors(driver)
    _open(driver, f"{base}/lang/en")

    assert errors_en == [] and errors_zh == [], errors_en + errors_zh
    assert any(word in toolbar for word in ("今天", "月", "周")), toolbar  # the calendar speaks Chinese
    assert "我的" in mine_zh and "My activities" not in mine_zh, mine_zh[:500]


def test_done_with_an_outcome_and_a_next_step_at_nine(app: Any, browser: Any, live_server: str,
                                                      make_customer: Any) -> None:
    driver, base = browser, live_server
    customer = make_customer("rep_a", name="Done Co")
    with app.app_context():
        due = clock.from_local(datetime.combine(clock.local_today(), datetime.min.time()) + timedelta(hours=15))
        item = Activity(kind="call", subject=SUBJECT, due_at=due, assignee_id=user_id("rep_a"), customer_id=customer,
                        status="open")
        db.session.add(item)
        db.session.commit()
        pk = item.id
    _log_in(driver, base, "rep_a")
    _console_errors(driver)
    _open(driver, f"{base}/activityview/show/{pk}")
    form = driver.find_element(By.CSS_SELECTOR, f"#activity-actions-{pk} form")
    form.find_element(By.NAME, "outcome").send_keys("Agreed to a demo")
    _submit(driver, form)
    assert "Activity done" in _alerts(driver), _alerts(driver)
    with app.app_context():
        done = db.session.get(Activity, pk)
        assert done.status == "done" and done.follow_up_id is not None
        assert db.session.get(FollowUp, done.follow_up_id).content == "Agreed to a demo"

    day = clock.local_today() + timedelta(days=2)
    _open(driver, f"{base}/customerview/show/{customer}")
    driver.find_element(By.ID, "add-follow-up").click()
    _wait(driver).until(lambda d: "/followupview/add" in d.current_url)
    form = driver.find_element(By.ID, "model_form")
    form.find_element(By.NAME, "content").send_keys("Demo booked")
    form.find_element(By.NAME, "next_step").send_keys("Send the quote")
    date_field = form.find_element(By.NAME, "next_step_date")
    driver.execute_script("arguments[0].value = arguments[1];", date_field, day.isoformat())
    _submit(driver, form)
    assert "/followupview/add" not in driver.current_url, _alerts(driver)
    with app.app_context():
        planned = db.session.scalars(select(Activity).where(Activity.from_follow_up_id.isnot(None))).one()
        local = clock.to_local(planned.due_at)
        assert (local.date(), local.hour, local.minute) == (day, 9, 0)
        assert planned.subject == "Send the quote"
    assert _console_errors(driver) == []


def test_bell_read_and_preferences(app: Any, browser: Any, live_server: str) -> None:
    driver, base = browser, live_server
    with app.app_context():
        notifications.notify("import_finished", [user_id("rep_a")],
                             params={"file": "客户.xlsx", "summary": "12 created"})
        db.session.commit()
    _log_in(driver, base, "rep_a")
    _console_errors(driver)
    _open(driver, f"{base}/")
    assert driver.find_element(By.ID, "notification-count").text == "1"
    driver.find_element(By.CSS_SELECTOR, "#notification-bell a").click()
    _wait(driver).until(lambda d: "/notifications" in d.current_url)
    assert "客户.xlsx" in driver.page_source
    _submit(driver, driver.find_element(By.XPATH, "//form[.//button[contains(., 'Mark read')]]"))
    assert not driver.find_elements(By.ID, "notification-count")
    with app.app_context():
        assert db.session.scalars(select(Notification)).one().read_at is not None

    _open(driver, f"{base}/notifications/preferences")
    form = driver.find_element(By.ID, "preferences")
    box = form.find_element(By.CSS_SELECTOR, "input[name='pref-birthday'][value='sms']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    box.click()
    driver.execute_script("document.getElementById('language').value = 'zh';")
    _submit(driver, form)
    assert "saved" in _alerts(driver) or "保存" in _alerts(driver), _alerts(driver)
    with app.app_context():
        assert db.session.get(CrmUser, user_id("rep_a")).language == "zh"
        assert notifications.preferences(user_id("rep_a"))["birthday"]["sms"] is True
    _open(driver, f"{base}/lang/zh")
    _open(driver, f"{base}/notifications/preferences")
    body = driver.find_element(By.TAG_NAME, "body").text
    _open(driver, f"{base}/lang/en")
    assert "联系人生日" in body and "Contact's birthday" not in body
    assert _console_errors(driver) == []


def test_greeting_from_the_contact_in_chinese(app: Any, browser: Any, live_server: str, make_customer: Any) -> None:
    from app.extensions import appbuilder
    from app.models import Customer, OutboxMessage
    from app.services import contacts

    driver, base = browser, live_server
    customer = make_customer("rep_a", name="贺卡客户")
    with app.app_context():
        contact = contacts.save_contact({"customer": db.session.get(Customer, customer), "name": "王五",
                                         "email": "wang@example.com", "birthday": "1980-03-13"},
                                        appbuilder.sm.find_user(username="rep_a"))
        db.session.commit()
        pk = contact.id
    _log_in(driver, base, "rep_a")
    _console_errors(driver)
    _open(driver, f"{base}/lang/zh")
    _open(driver, f"{base}/greeting/{pk}?language=zh")
    form = driver.find_element(By.CSS_SELECTOR, "form[method=post]")
    assert "生日快乐" in form.find_element(By.NAME, "subject").get_attribute("value")
    _submit(driver, form)
    alerts = _alerts(driver)
    _open(driver, f"{base}/lang/en")
    with app.app_context():
        assert [m.to_address for m in db.session.scalars(select(OutboxMessage))] == ["wang@example.com"]
    assert "王五" in alerts, alerts
    assert _console_errors(driver) == []
