"""Reminder rules (issue 14): activity due, follow-up missing (001), birthdays (003, 29 February,
month and year ends, Asia/Shanghai days), stale opportunities, the morning digest; each once per
occasion under two ticks (and two threads at once on PostgreSQL)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from app import clock
from app.extensions import appbuilder, db
from app.models import Activity, Customer, DigestSent, Notification, OutboxMessage
from app.models.org import CrmUser
from app.models.sales import Contact, Opportunity, Stage
from app.services import contacts, reminders
from app.services import settings as crm_settings
from tests.concurrency import at_once
from tests.conftest import user_id

SHANGHAI = "Asia/Shanghai"


pytestmark = pytest.mark.usefixtures("shanghai")


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


_codes = iter(range(1, 10**6))


def activity(assignee: str = "rep_a", due: datetime | None = None, **values: Any) -> Activity:
    item = Activity(code=f"A-T{next(_codes)}", subject=values.pop("subject", "Call about the quote"),
                    kind=values.pop("kind", "call"), due_at=due or utc(2026, 3, 10, 1, 0),
                    assignee_id=user_id(assignee), status=values.pop("status", "open"), **values)
    db.session.add(item)
    db.session.commit()
    return item


def told(event: str, username: str | None = None) -> list[Notification]:
    stmt = select(Notification).where(Notification.event == event).order_by(Notification.id)
    if username:
        stmt = stmt.where(Notification.user_id == user_id(username))
    return list(db.session.scalars(stmt))


# --- activity due -----------------------------------------------------------------------------

def test_a_due_activity_tells_its_assignee_once_under_two_ticks(ctx: Any) -> None:
    item = activity(due=utc(2026, 3, 10, 1, 0))
    assert reminders.activities_due(utc(2026, 3, 10, 0, 59)) == 0  # not due yet
    assert reminders.activities_due(utc(2026, 3, 10, 1, 0)) == 1
    assert reminders.activities_due(utc(2026, 3, 10, 1, 1)) == 0  # the next tick, or a restart
    (note,) = told("activity_due", "rep_a")
    assert note.occasion == f"activity_due:{item.id}:2026-03-10T01:00:00+00:00"
    assert note.params["code"] == item.code and note.params["subject"] == "Call about the quote"
    assert note.params["due"] == "2026-03-10 09:00"  # CRM-zone wall time (Shanghai)


def test_moving_the_due_time_rearms_the_reminder(ctx: Any) -> None:
    item = activity(due=utc(2026, 3, 10, 1, 0))
    reminders.activities_due(utc(2026, 3, 10, 1, 0))
    item.due_at = utc(2026, 3, 10, 5, 0)
    db.session.commit()
    assert reminders.activities_due(utc(2026, 3, 10, 5, 0)) == 1
    assert len(told("activity_due", "rep_a")) == 2


def test_done_cancelled_and_day_old_activities_are_not_announced(ctx: Any) -> None:
    activity(due=utc(2026, 3, 10, 1, 0), status="done")
    activity(due=utc(2026, 3, 10, 1, 0), status="cancelled")
    activity(due=utc(2026, 3, 9, 0, 59))  # fell due more than a day ago: an outage is not flooded
    assert reminders.activities_due(utc(2026, 3, 10, 1, 0)) == 0
    assert told("activity_due") == []


def test_the_activity_due_switch_turns_the_rule_off(ctx: Any) -> None:
    activity(due=utc(2026, 3, 10, 1, 0))
    crm_settings.save({"reminder_activity_due": False}, user("admin"))
    db.session.commit()
    assert reminders.activities_due(utc(2026, 3, 10, 1, 0)) == 0


# --- follow-up not recorded within 24 hours (001) -------------------------------------------------

def test_a_done_visit_without_a_follow_up_tells_its_assignee_after_24_hours(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    item = activity(kind="visit", status="done", customer_id=customer, done_at=utc(2026, 3, 10, 2, 0))
    assert reminders.follow_ups_missing(utc(2026, 3, 11, 1, 59)) == 0  # within 24 hours
    assert reminders.follow_ups_missing(utc(2026, 3, 11, 2, 0)) == 1
    assert reminders.follow_ups_missing(utc(2026, 3, 11, 2, 15)) == 0
    (note,) = told("follow_up_missing", "rep_a")
    assert note.occasion == f"follow_up_missing:{item.id}"
    assert note.params["hours"] == 24


def test_a_follow_up_recorded_after_the_visit_silences_the_reminder(ctx: Any, make_customer: Any,
                                                                    make_follow_up: Any) -> None:
    customer = make_customer("rep_a")
    with clock.frozen(utc(2026, 3, 10, 6, 0)):
        make_follow_up(customer, "rep_a")
    activity(kind="call", status="done", customer_id=customer, done_at=utc(2026, 3, 10, 2, 0))
    activity(kind="meeting", status="done", customer_id=customer, done_at=utc(2026, 3, 10, 2, 0))  # not a call/visit
    assert reminders.follow_ups_missing(utc(2026, 3, 11, 3, 0)) == 0


def test_the_follow_up_threshold_is_an_admin_setting(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    activity(kind="call", status="done", customer_id=customer, done_at=utc(2026, 3, 10, 2, 0))
    crm_settings.save({"follow_up_within_hours": "4"}, user("admin"))
    db.session.commit()
    assert reminders.follow_ups_missing(utc(2026, 3, 10, 6, 0)) == 1


# --- birthdays (003: 3 days before) ---------------------------------------------------------------

def contact(customer_id: int, born: date, owner: str = "rep_a", name: str = "Wang Wu") -> Contact:
    item = contacts.save_contact({"customer": db.session.get(Customer, customer_id), "name": name,
                                  "phone": "13912345678", "birthday": born.isoformat()}, user(owner))
    db.session.commit()
    return item


def test_a_birthday_three_days_ahead_tells_the_customers_owner_once_without_the_phone(
        ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    person = contact(customer, date(1980, 3, 13))
    assert reminders.birthdays(date(2026, 3, 9)) == 0  # four days ahead
    assert reminders.birthdays(date(2026, 3, 10)) == 1
    assert reminders.birthdays(date(2026, 3, 11)) == 0  # already told this year
    (note,) = told("birthday", "rep_a")
    assert note.occasion == f"birthday:{person.code}:2026"
    assert note.params == {"name": "Wang Wu", "customer": db.session.get(Customer, customer).code,
                           "date": "2026-03-13"}
    assert "139" not in str(note.params) and "5678" not in str(note.params)


def test_birthdays_across_the_month_and_year_end_count_for_the_next_year(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    person = contact(customer, date(1975, 1, 2))
    contact(customer, date(1990, 3, 1), name="Li Si")
    assert reminders.birthdays(date(2026, 12, 30)) == 1
    (note,) = told("birthday")
    assert note.occasion == f"birthday:{person.code}:2027" and note.params["date"] == "2027-01-02"
    assert reminders.birthdays(date(2027, 2, 26)) == 1  # 1 March is 3 days after 26 February 2027
    assert told("birthday")[-1].params["date"] == "2027-03-01"


def test_29_february_is_celebrated_on_28_february_in_common_years(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    person = contact(customer, date(1988, 2, 29))
    assert reminders.birthdays(date(2027, 2, 24)) == 0
    assert reminders.birthdays(date(2027, 2, 25)) == 1  # 28 February 2027 is 3 days ahead
    assert told("birthday")[-1].params["date"] == "2027-02-28"
    assert reminders.birthdays(date(2028, 2, 25)) == 0  # 2028 is a leap year: 29 February is 4 days ahead
    assert reminders.birthdays(date(2028, 2, 26)) == 1
    assert told("birthday")[-1].occasion == f"birthday:{person.code}:2028"
    assert told("birthday")[-1].params["date"] == "2028-02-29"


def test_the_birthday_day_is_the_shanghai_day_not_the_utc_day(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    contact(customer, date(1980, 3, 14))
    with clock.frozen(utc(2026, 3, 10, 23, 30)):  # 07:30 on 11 March in Shanghai, still 10 March in UTC
        assert reminders.birthdays() == 1
    assert told("birthday")[-1].params["date"] == "2026-03-14"


def test_a_day_the_scheduler_missed_is_caught_up_and_archived_customers_are_skipped(
        ctx: Any, make_customer: Any) -> None:
    customer, archived = make_customer("rep_a"), make_customer("rep_b", name="Gone Ltd")
    contact(customer, date(1980, 3, 12))
    contact(archived, date(1980, 3, 12), owner="rep_b")
    db.session.execute(update(Customer).where(Customer.id == archived).values(archived_at=utc(2026, 1, 1)))
    db.session.commit()
    assert reminders.birthdays(date(2026, 3, 10)) == 1  # two days ahead: the run three days before was missed
    assert told("birthday", "rep_b") == []


# --- opportunities not updated --------------------------------------------------------------------

def opportunity(customer_id: int, stage_code: str, changed: datetime) -> Opportunity:
    stage = db.session.scalar(select(Stage).where(Stage.code == stage_code))
    with clock.frozen(changed):
        item = Opportunity(code=f"O-T{next(_codes)}", customer_id=customer_id, title="ERP rollout", stage_id=stage.id,
                           owner_id=user_id("rep_a"))
        db.session.add(item)
        db.session.commit()
    return item


def stages() -> tuple[str, str, str]:
    """(an open stage without stale days, an open stage with them, a won stage) codes."""
    rows = db.session.scalars(select(Stage).order_by(Stage.sort_order)).all()
    open_ = [s for s in rows if not s.is_won and not s.is_lost]
    won = next(s for s in rows if s.is_won)
    db.session.execute(update(Stage).where(Stage.id == open_[0].id).values(stale_days=None))
    db.session.execute(update(Stage).where(Stage.id == open_[1].id).values(stale_days=3))
    db.session.commit()
    return open_[0].code, open_[1].code, won.code


def test_stale_opportunities_tell_the_owner_once_per_update(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    plain, quick, won = stages()
    never = opportunity(customer, plain, utc(2026, 1, 1, 0, 0))  # its stage has no stale days: as on the kanban
    fresh = opportunity(customer, quick, utc(2026, 3, 7, 0, 0))
    by_stage = opportunity(customer, quick, utc(2026, 3, 5, 0, 0))  # its stage says 3 days
    opportunity(customer, won, utc(2026, 1, 1, 0, 0))  # closed: never stale
    assert reminders.stale_opportunities(utc(2026, 3, 9, 0, 0)) == 1
    assert reminders.stale_opportunities(utc(2026, 3, 9, 1, 0)) == 0
    assert {n.params["code"] for n in told("opportunity_stale", "rep_a")} == {by_stage.code}
    assert {n.params["days"] for n in told("opportunity_stale")} == {3}
    assert not {fresh.code, never.code} & {n.params["code"] for n in told("opportunity_stale")}


# --- the morning digest ---------------------------------------------------------------------------

def test_the_morning_digest_goes_once_per_user_and_local_day_in_their_language(ctx: Any) -> None:
    activity("rep_a", due=utc(2026, 3, 9, 2, 0), subject="Overdue call")
    activity("rep_a", due=utc(2026, 3, 10, 6, 0), subject="Visit today")
    activity("rep_a", due=utc(2026, 3, 11, 6, 0), subject="Tomorrow's call")
    activity("rep_b", due=utc(2026, 3, 10, 3, 0), subject="拜访客户")
    db.session.execute(update(CrmUser).where(CrmUser.username == "rep_b").values(language="zh"))
    db.session.commit()
    assert reminders.morning_digest(utc(2026, 3, 9, 23, 59)) == 0  # 07:59 in Shanghai: before the digest hour
    assert reminders.morning_digest(utc(2026, 3, 10, 0, 0)) == 2  # 08:00 on 10 March in Shanghai
    assert reminders.morning_digest(utc(2026, 3, 10, 1, 0)) == 0  # the next hourly tick
    mails = {m.to_address: m for m in db.session.scalars(select(OutboxMessage))}
    assert set(mails) == {"rep_a@example.com", "rep_b@example.com"}
    english, chinese = mails["rep_a@example.com"], mails["rep_b@example.com"]
    assert "Overdue call" in english.text_body and "Visit today" in english.text_body
    assert "Tomorrow's call" not in english.text_body
    assert english.subject == "Your CRM day: 2026-03-10" and english.language == "en"
    assert "Visit today" in english.html_body
    assert chinese.subject == "今日 CRM 提醒：2026-03-10" and "拜访客户" in chinese.text_body
    assert chinese.language == "zh" and "今天的待办" in chinese.text_body
    assert set(db.session.scalars(select(DigestSent.day))) == {"2026-03-10"}


def test_the_digest_and_the_due_reminder_never_carry_a_phone_typed_into_a_subject(ctx: Any) -> None:
    activity("rep_a", due=utc(2026, 3, 10, 6, 0), subject="回访电话13800138000")
    assert reminders.morning_digest(utc(2026, 3, 10, 0, 0)) == 1
    (digest,) = db.session.scalars(select(OutboxMessage)).all()
    assert "138****8000" in digest.text_body and "13800138000" not in digest.text_body + digest.html_body
    reminders.activities_due(utc(2026, 3, 10, 6, 1))
    (item,) = told("activity_due", "rep_a")
    assert item.params["subject"] == "回访电话138****8000"


def test_a_late_tick_still_sends_the_days_digest_and_users_without_e_mail_get_none(ctx: Any) -> None:
    activity("rep_a", due=utc(2026, 3, 10, 6, 0))
    activity("rep_c", due=utc(2026, 3, 10, 6, 0))
    db.session.execute(update(CrmUser).where(CrmUser.username == "rep_c").values(email=""))
    db.session.commit()
    assert reminders.morning_digest(utc(2026, 3, 10, 5, 0)) == 1  # 13:00: the scheduler was down at 08:00
    assert [m.to_address for m in db.session.scalars(select(OutboxMessage))] == ["rep_a@example.com"]


def test_no_activities_no_digest(ctx: Any) -> None:
    activity("rep_a", due=utc(2026, 3, 12, 6, 0))  # only later ones
    assert reminders.morning_digest(utc(2026, 3, 10, 0, 0)) == 0
    assert db.session.scalars(select(OutboxMessage)).all() == []


# --- two ticks at once (PostgreSQL: real concurrent transactions) ----------------------------------

@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="concurrent transactions need PostgreSQL (SQLite serialises writers)")
def test_two_concurrent_ticks_tell_once(app: Any, ctx: Any, make_customer: Any) -> None:
    activity(due=utc(2026, 3, 10, 1, 0))
    activity("rep_b", due=utc(2026, 3, 9, 6, 0))
    contact(make_customer("rep_a"), date(1980, 3, 12))
    results = at_once(app, lambda: (reminders.activities_due(utc(2026, 3, 10, 1, 0)),
                                    reminders.morning_digest(utc(2026, 3, 10, 1, 0)),
                                    reminders.birthdays(date(2026, 3, 10))))
    assert sum(a for a, _, _ in results) == 2 and sum(d for _, d, _ in results) == 2
    assert sum(b for _, _, b in results) == 1 and len(told("birthday")) == 1
    assert len(told("activity_due")) == 2
    mails = db.session.scalars(select(OutboxMessage)).all()
    assert len([m for m in mails if m.notification_id is None]) == 2  # one digest per user
    assert len([m for m in mails if m.notification_id is not None]) == 1  # the birthday's own e-mail, once


def test_every_rule_is_a_scheduled_job(ctx: Any) -> None:
    from app import scheduler

    ids = {job.id for job in scheduler.JOBS}
    assert {"reminder_activity_due", "reminder_follow_up", "reminder_birthdays", "reminder_stale_opportunities",
            "reminder_digest"} <= ids
    assert scheduler.definition("reminder_digest").cron == {"minute": 0}


def test_the_digest_carries_the_notifications_held_for_it(ctx: Any) -> None:
    from app.models import NotificationPreference
    from app.services import mail, notifications

    db.session.add(NotificationPreference(user_id=user_id("rep_a"), event="import_finished", in_app=True, email=True,
                                          digest=True))
    db.session.commit()
    with clock.frozen(utc(2026, 3, 9, 12, 0)):
        notifications.notify("import_finished", [user_id("rep_a")], params={"file": "leads.xlsx", "summary": "ok"})
        db.session.commit()
    assert reminders.morning_digest(utc(2026, 3, 10, 0, 0)) == 1  # no activities, but a held notification
    digest = db.session.scalar(select(OutboxMessage).where(OutboxMessage.notification_id.is_(None)))
    assert "Import of leads.xlsx finished: ok" in digest.text_body
    held = db.session.scalar(select(OutboxMessage).where(OutboxMessage.notification_id.is_not(None)))
    assert held.status == mail.DIGESTED  # never sent alone as well
