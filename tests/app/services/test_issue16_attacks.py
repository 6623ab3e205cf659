"""Attacks on issue 16's services (tester "attacker"): SLA calendars an admin can type that
must not hang a request, and transfer rules that must not hand a ticket (or someone's
internal problem report) to a person who may not see it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models.customers import Customer
from app.models.org import CrmUser, Department
from app.models.service import Priority, Ticket, TicketType, TransferRule, WorkCalendar
from app.security import data_scope
from app.services import problem_reports, sla, tickets
from app.services.errors import RuleViolation

pytestmark = pytest.mark.usefixtures("shanghai")
ZONE = ZoneInfo("Asia/Shanghai")


class Hung(Exception):
    """The call did not return in time."""


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise ``Hung`` inside the block after ``seconds`` (a hang becomes a failure)."""

    def ring(signum: int, frame: Any) -> None:
        raise Hung(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _calendar(weekdays: str = "12345", start: time = time(9), end: time = time(18),
              exceptions: dict[date, str] | None = None) -> sla.BusinessCalendar:
    return sla.BusinessCalendar(weekdays, start, end, None, None, exceptions or {}, ZONE)


@pytest.mark.parametrize("weekdays,start,end", [
    ("", time(9), time(18)),  # no working weekday at all
    ("12345", time(18), time(9)),  # the day ends before it starts
    ("12345", time(9), time(9)),  # a day of no minutes
])
def test_a_calendar_with_no_working_time_does_not_hang_the_deadline_search(weekdays: str, start: time,
                                                                             end: time) -> None:
    """A calendar an admin can save (weekdays empty, day_end <= day_start) must give a clear
    refusal or an answer, never loop forever (it would hang every ticket save)."""
    table = _calendar(weekdays, start, end)
    at = datetime(2026, 12, 1, 10, 0, tzinfo=ZONE)
    with deadline(5), pytest.raises(ValueError, match="no working time"):  # a clear refusal, in time
        sla.add_business_minutes(at, 60, table)
    calendar = WorkCalendar(name="Broken", weekdays=weekdays, day_start=start, day_end=end)
    with pytest.raises(RuleViolation) as refused:  # and such a calendar is never saved
        sla.check_calendar(calendar)
    assert set(refused.value.errors) & {"weekdays", "day_end"}


def test_a_year_of_holidays_ends_the_search_in_the_next_working_year() -> None:
    """Every day of 2027 a holiday: 60 minutes from 2026-12-31 17:30 end on the first working
    morning of 2028 (Monday 3 January, 09:30)."""
    days = {date(2027, 1, 1) + timedelta(days=n): "holiday" for n in range(365)}
    table = _calendar(exceptions=days)
    with deadline(5):
        due = sla.add_business_minutes(datetime(2026, 12, 31, 17, 30, tzinfo=ZONE), 60, table)
    assert due.astimezone(ZONE) == datetime(2028, 1, 3, 9, 30, tzinfo=ZONE)


def _user(name: str) -> CrmUser:
    return appbuilder.sm.find_user(username=name)


def _rule(team: str, **fields: Any) -> TransferRule:
    item = TransferRule(name=f"to {team}", team=db.session.scalar(select(Department).where(Department.name == team)),
                        position=0, strategy="round_robin", **fields)
    db.session.add(item)
    db.session.commit()
    return item


def test_routing_never_gives_a_ticket_to_someone_who_cannot_see_its_customer(ctx: Any,
                                                                            make_customer: Any) -> None:
    """A manual transfer to rep_c of rep_a's customer's ticket is refused (check_assignee); a
    transfer rule sending complaints to South must not do it either (South's members, rep_c
    and manager_s, cannot see an East customer): the ticket stays in the team's queue or
    goes to someone who can see it."""
    _rule("South")
    cid = make_customer("rep_a")
    item = tickets.save_ticket({"customer": db.session.get(Customer, cid), "subject": "Invoice 13812345678 wrong",
                                "ticket_type": db.session.scalar(select(TicketType).where(TicketType.code == "complaint")),
                                "priority": db.session.scalar(select(Priority).where(Priority.code == "low"))},
                               _user("rep_a"))
    db.session.commit()
    if item.assignee_id is not None:
        assert tickets.may_see_customer(db.session.get(CrmUser, item.assignee_id), cid), \
            "routed to someone who cannot see the customer"
    rep_c = _user("rep_c")
    assert db.session.scalar(select(Ticket.id).where(Ticket.id == item.id,
                                                     data_scope.scope_clause(rep_c, Ticket))) is None


def test_a_keyword_rule_does_not_route_someones_problem_report_to_a_sales_rep(ctx: Any) -> None:
    """问题反馈 goes to the admins (附录3). A keyword rule meant for customers' tickets ("登录"
    -> South) must not hand rep_a's internal problem report to rep_c, who would then read it."""
    _rule("South", keywords="登录")
    report = problem_reports.report_problem({"description": "登录失败, 密码是 Secret-123", "steps": "1. 登录"},
                                            _user("rep_a"))
    db.session.commit()
    rep_c = _user("rep_c")
    assert report.assignee_id != rep_c.id
    assert db.session.scalar(select(Ticket.id).where(Ticket.id == report.id,
                                                     data_scope.scope_clause(rep_c, Ticket))) is None
