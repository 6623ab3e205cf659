"""Second round of attacks on issue 16's services (tester "attacker2"): who hears of a
ticket's SLA (a team lead or their manager who may not see the customer), daylight saving,
pauses outside working hours, resolving while waiting and reopening twice."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import appbuilder, db
from app.models.customers import Customer
from app.models.notifications import Notification
from app.models.org import CrmUser, Department
from app.models.service import Priority, SlaPolicy, Ticket, TicketType
from app.security import data_scope
from app.services import sla, tickets

pytestmark = pytest.mark.usefixtures("shanghai")
SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def _user(name: str) -> CrmUser:
    return appbuilder.sm.find_user(username=name)


def _entry(model: type, code: str) -> Any:
    return db.session.scalar(select(model).where(model.code == code))


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``at(datetime)``: the CRM's clock reads that instant from now on."""

    def move(instant: datetime) -> None:
        monkeypatch.setattr(clock, "utc_now", lambda: instant.astimezone(ZoneInfo("UTC")))

    return move


# --- who hears of the SLA ----------------------------------------------------------------------

def test_sla_warnings_breaches_and_escalations_reach_only_people_who_can_see_the_ticket(
        ctx: Any, make_customer: Any, at: Any) -> None:
    """An East customer's ticket worked by rep_a in a team led by manager_s (South), inside a
    department led by rep_c (South). The minute job tells "the assignee and the team lead"
    and escalates to "the team lead's manager" without asking whether they may see the
    ticket: manager_s and rep_c get a warning / breach / escalation (in the bell and by
    e-mail) about a ticket that is a 404 for them. Whoever is told must be able to open it
    (or the notice goes to someone who can)."""
    sla.seed_defaults()
    head = Department(name="Attack2 Head", manager_id=_user("rep_c").id)
    db.session.add(head)
    db.session.flush()
    team = Department(name="Attack2 Team", parent_id=head.id, manager_id=_user("manager_s").id)
    db.session.add(team)
    db.session.commit()
    cid = make_customer("rep_a")
    at(datetime(2025, 9, 15, 10, 0, tzinfo=SH))
    item = tickets.save_ticket({"customer": db.session.get(Customer, cid), "subject": "Machine broken",
                                "ticket_type": _entry(TicketType, "after_sales"), "priority": _entry(Priority, "high"),
                                "assignee": _user("rep_a"), "team": team}, _user("manager"))
    db.session.commit()
    ticket_id = item.id
    for policy in db.session.scalars(select(SlaPolicy)):
        policy.escalate = True
    db.session.commit()
    sla.check_deadlines(datetime(2025, 9, 30, 10, 0, tzinfo=SH))
    told = db.session.execute(select(CrmUser.username, Notification.event).join(
        Notification, Notification.user_id == CrmUser.id).where(Notification.record_id == ticket_id,
                                                                Notification.event.like("sla_%"))).all()
    assert told, "the minute job told nobody"
    ticket = db.session.get(Ticket, ticket_id)
    blind = sorted({(name, event) for name, event in told if not data_scope.can_see(_user(name), ticket)})
    assert not blind, f"told about a ticket they cannot open: {blind}"


# --- time ----------------------------------------------------------------------------------------

def _berlin_calendar() -> sla.BusinessCalendar:
    return sla.BusinessCalendar("12345", time(9), time(18), time(12), time(13), {}, BERLIN)


def test_deadlines_across_the_spring_change_in_berlin() -> None:
    """Europe/Berlin springs forward on Sunday 2027-03-28: 120 working minutes from Friday
    17:00 end Monday 10:00 local (CEST, 08:00 UTC), not an hour off."""
    table = _berlin_calendar()
    due = sla.add_business_minutes(datetime(2027, 3, 26, 17, 0, tzinfo=BERLIN), 120, table)
    assert due == datetime(2027, 3, 29, 8, 0, tzinfo=ZoneInfo("UTC"))
    assert due.astimezone(BERLIN).hour == 10


def test_minutes_between_across_the_autumn_change_in_berlin() -> None:
    """Europe/Berlin falls back on Sunday 2027-10-31: Friday 17:00 to Monday 10:00 is 120
    working minutes (the extra night hour is not working time)."""
    table = _berlin_calendar()
    assert sla.business_minutes_between(datetime(2027, 10, 29, 17, 0, tzinfo=BERLIN),
                                        datetime(2027, 11, 1, 10, 0, tzinfo=BERLIN), table) == 120


def test_a_ticket_created_at_17_59_59_and_during_lunch_and_on_a_holiday() -> None:
    """Hand-computed: 60 minutes from 17:59:59 Friday end Monday 09:59:59; from 12:30 end
    13:60 = 14:00; from a holiday morning start the next working morning."""
    table = sla.BusinessCalendar("12345", time(9), time(18), time(12), time(13),
                                 {date(2025, 10, 1): "holiday"}, SH)
    assert sla.add_business_minutes(datetime(2025, 9, 19, 17, 59, 59, tzinfo=SH), 60, table).astimezone(SH) == \
        datetime(2025, 9, 22, 9, 59, 59, tzinfo=SH)
    assert sla.add_business_minutes(datetime(2025, 9, 17, 12, 30, tzinfo=SH), 60, table).astimezone(SH) == \
        datetime(2025, 9, 17, 14, 0, tzinfo=SH)
    assert sla.add_business_minutes(datetime(2025, 10, 1, 10, 0, tzinfo=SH), 60, table).astimezone(SH) == \
        datetime(2025, 10, 2, 10, 0, tzinfo=SH)


def _ticket(at: Any, make_customer: Any) -> int:
    """A high-priority ticket of rep_a's customer, written by manager on Monday 2025-09-15
    10:00, assigned to rep_a: response due Mon 15:00, resolution due Wed 10:00 (standard
    calendar: 09:00-18:00, lunch 12:00-13:00)."""
    sla.seed_defaults()
    db.session.commit()
    cid = make_customer("rep_a")
    at(datetime(2025, 9, 15, 10, 0, tzinfo=SH))
    item = tickets.save_ticket({"customer": db.session.get(Customer, cid), "subject": "Slow",
                                "ticket_type": _entry(TicketType, "consult"), "priority": _entry(Priority, "high"),
                                "assignee": _user("rep_a")}, _user("manager"))
    db.session.commit()
    assert item.resolve_due_at.astimezone(SH) == datetime(2025, 9, 17, 10, 0, tzinfo=SH)
    return item.id


def _move(at: Any, pk: int, when: datetime, status: str, **extra: Any) -> Ticket:
    at(when)
    item = tickets.change_status(pk, _user("rep_a"), status, **extra)
    db.session.commit()
    return item


def test_a_pause_from_friday_evening_to_monday_morning_moves_nothing(ctx: Any, make_customer: Any, at: Any) -> None:
    """Waiting from Monday 19:00 to Tuesday 08:30 (outside working hours) pauses no working
    minute: the deadlines stay."""
    pk = _ticket(at, make_customer)
    _move(at, pk, datetime(2025, 9, 15, 11, 0, tzinfo=SH), "in_progress")
    _move(at, pk, datetime(2025, 9, 15, 19, 0, tzinfo=SH), "waiting")
    item = _move(at, pk, datetime(2025, 9, 16, 8, 30, tzinfo=SH), "in_progress")
    assert item.paused_minutes == 0
    assert item.resolve_due_at.astimezone(SH) == datetime(2025, 9, 17, 10, 0, tzinfo=SH)


def test_resolve_while_waiting_then_reopen_twice(ctx: Any, make_customer: Any, at: Any) -> None:
    """Hand-computed: waiting Mon 11:00 -> resolved Mon 14:00 (120 paused: 11-12, 13-14) ->
    reopened Tue 10:00 (300: Mon 14-18, Tue 9-10) -> resolved Tue 11:00 -> reopened Tue 15:00
    (180: 11-12, 13-15). 600 paused minutes push Wed 10:00 to Thu 12:00; two reopens."""
    pk = _ticket(at, make_customer)
    _move(at, pk, datetime(2025, 9, 15, 10, 30, tzinfo=SH), "in_progress")
    _move(at, pk, datetime(2025, 9, 15, 11, 0, tzinfo=SH), "waiting")
    _move(at, pk, datetime(2025, 9, 15, 14, 0, tzinfo=SH), "resolved", resolution="Restarted")
    _move(at, pk, datetime(2025, 9, 16, 10, 0, tzinfo=SH), "reopen")
    _move(at, pk, datetime(2025, 9, 16, 11, 0, tzinfo=SH), "resolved", resolution="Restarted again")
    item = _move(at, pk, datetime(2025, 9, 16, 15, 0, tzinfo=SH), "reopen")
    assert item.reopen_count == 2
    assert item.paused_minutes == 600
    assert item.resolve_due_at.astimezone(SH) == datetime(2025, 9, 18, 12, 0, tzinfo=SH)
    assert item.paused_since is None and item.resolved_at is None
    state = sla.state(item, datetime(2025, 9, 18, 11, 0, tzinfo=SH))
    assert state.resolve_left == 60 and not state.resolve_breached


def test_a_policy_at_its_largest_minutes_still_saves_a_ticket(ctx: Any, make_customer: Any, at: Any) -> None:
    """The SLA screen allows up to a year of minutes (525,600 working minutes: about four and
    a half working years) and 30 days of warning; a ticket under it saves with deadlines."""
    sla.seed_defaults()
    for policy in db.session.scalars(select(SlaPolicy)):
        policy.first_response_minutes = policy.resolution_minutes = 60 * 24 * 365
        policy.warn_before_minutes = 60 * 24 * 30
    db.session.commit()
    cid = make_customer("rep_a")
    at(datetime(2025, 9, 15, 10, 0, tzinfo=SH))
    item = tickets.save_ticket({"customer": db.session.get(Customer, cid), "subject": "Far", "ticket_type":
                                _entry(TicketType, "consult")}, _user("rep_a"))
    db.session.commit()
    assert item.resolve_due_at is not None and item.resolve_due_at > datetime(2029, 1, 1, tzinfo=SH)
    assert item.resolve_warn_at < item.resolve_due_at
    assert item.resolve_due_at - item.resolve_warn_at > timedelta(days=30)
