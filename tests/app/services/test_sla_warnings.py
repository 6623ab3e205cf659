"""The minute job: SLA warnings, breaches and escalation, exactly once each (also with two
schedulers at once), to the assignee, the team lead and the team lead's manager."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models.customers import Customer
from app.models.dictionaries import CustomerType
from app.models.notifications import Notification
from app.models.org import CrmUser, Department
from app.models.service import Priority, SlaPolicy, Ticket, TicketLog, TicketType
from app.services import notifications, sla
from tests.concurrency import at_once

pytestmark = pytest.mark.usefixtures("shanghai")
SH = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def uid(name: str) -> int:
    return db.session.scalars(select(CrmUser.id).where(CrmUser.username == name)).one()


def _id(model: type, code: str) -> int:
    return db.session.scalars(select(model.id).where(model.code == code)).one()


@pytest.fixture
def team(ctx: Any) -> Department:
    """"SLA Team" led by manager, inside "SLA Head" led by admin."""
    sla.seed_defaults()
    head = Department(name="SLA Head", manager_id=uid("admin"))
    db.session.add(head)
    db.session.flush()
    unit = Department(name="SLA Team", parent_id=head.id, manager_id=uid("manager"))
    db.session.add(unit)
    db.session.commit()
    return unit


FRIDAY_10 = datetime(2025, 9, 19, 10, 0, tzinfo=SH)


def open_ticket(team: Department | None, created: datetime = FRIDAY_10, code: str = "T-W-1") -> int:
    """A high-priority ticket on a customer of rep_b, assigned to rep_b: response due Fri 15:00
    (warn 14:00), resolve Tue 10:00. The team lead (manager) sees rep_b's customers."""
    customer = Customer(name=f"SLA customer {code}", owner_id=uid("rep_b"), contact_phone="13800000000",
                        type_id=db.session.scalar(select(CustomerType.id)))
    db.session.add(customer)
    db.session.flush()
    item = Ticket(code=code, subject="Slow", type_id=_id(TicketType, "consult"), priority_id=_id(Priority, "high"),
                  status="assigned", created_on=created, assignee_id=uid("rep_b"), customer_id=customer.id,
                  team_id=team.id if team else None)
    db.session.add(item)
    db.session.flush()
    sla.start(item, created)
    db.session.commit()
    return item.id


def told(event: str) -> list[str]:
    return sorted(db.session.scalars(select(CrmUser.username).join(Notification, Notification.user_id == CrmUser.id)
                                     .where(Notification.event == event)))


def logged(ticket_id: int) -> list[str]:
    return list(db.session.scalars(select(TicketLog.kind).where(TicketLog.ticket_id == ticket_id)
                                   .order_by(TicketLog.id)))


def test_nothing_before_the_warning(team: Department) -> None:
    ticket_id = open_ticket(team)
    assert sla.check_deadlines(sh(2025, 9, 19, 13, 59)) == {"sla_warning": 0, "sla_breach": 0}
    assert logged(ticket_id) == [] and told("sla_warning") == []


def test_warning_then_breach_then_escalation_once_each(team: Department) -> None:
    ticket_id = open_ticket(team)
    assert sla.check_deadlines(sh(2025, 9, 19, 14, 1))["sla_warning"] == 1
    assert told("sla_warning") == ["manager", "rep_b"]
    note = db.session.scalars(select(Notification).where(Notification.event == "sla_warning")).first()
    assert notifications.text_of(note, True, language="en") == \
        "Ticket T-W-1: its first response deadline is at 2025-09-19 15:00"
    assert sla.check_deadlines(sh(2025, 9, 19, 14, 30)) == {"sla_warning": 0, "sla_breach": 0}
    assert sla.check_deadlines(sh(2025, 9, 19, 15, 1))["sla_breach"] == 1
    assert told("sla_breach") == ["manager", "rep_b"]
    assert told("sla_escalated") == ["admin"]
    assert sla.check_deadlines(sh(2025, 9, 19, 16, 0)) == {"sla_warning": 0, "sla_breach": 0}
    assert logged(ticket_id) == ["sla_warning", "sla_breach", "sla_escalated"]
    item = db.session.get(Ticket, ticket_id)
    assert item.response_warned and item.response_breached and not item.resolve_warned


def test_two_schedulers_at_once_flag_and_notify_once(app: Any, team: Department) -> None:
    ticket_id = open_ticket(team)
    open_ticket(team, code="T-W-2")

    def tick() -> dict[str, int]:
        return sla.check_deadlines(sh(2025, 9, 19, 15, 1))

    results = at_once(app, tick)
    db.session.expire_all()
    assert sum(r["sla_warning"] for r in results) == 2 and sum(r["sla_breach"] for r in results) == 2
    assert db.session.scalar(select(func.count()).select_from(Notification)
                             .where(Notification.event == "sla_breach")) == 4
    assert told("sla_escalated") == ["admin", "admin"]
    assert logged(ticket_id) == ["sla_warning", "sla_breach", "sla_escalated"]


def test_no_escalation_when_the_policy_says_so(team: Department) -> None:
    for policy in db.session.scalars(select(SlaPolicy)):
        policy.escalate = False
    db.session.commit()
    ticket_id = open_ticket(team)
    sla.check_deadlines(sh(2025, 9, 19, 15, 1))
    assert told("sla_escalated") == [] and "sla_escalated" not in logged(ticket_id)


def test_without_a_team_lead_the_parent_manager_still_hears_of_it(team: Department) -> None:
    team.manager_id = None
    db.session.commit()
    open_ticket(team)
    sla.check_deadlines(sh(2025, 9, 19, 15, 1))
    assert told("sla_breach") == ["rep_b"]
    assert told("sla_escalated") == ["admin"]


def test_paused_responded_and_resolved_tickets_are_left_alone(team: Department) -> None:
    paused, answered, done = (open_ticket(team, code=c) for c in ("T-P", "T-A", "T-D"))
    sla.pause(db.session.get(Ticket, paused), sh(2025, 9, 19, 11, 0))
    sla.responded(db.session.get(Ticket, answered), sh(2025, 9, 19, 11, 0))
    db.session.get(Ticket, done).status = "resolved"
    db.session.commit()
    assert sla.check_deadlines(sh(2025, 9, 19, 15, 1)) == {"sla_warning": 0, "sla_breach": 0}
    # the answered ticket's resolution clock still warns and breaches later
    counts = sla.check_deadlines(sh(2025, 9, 23, 10, 1))
    assert counts == {"sla_warning": 1, "sla_breach": 1}
    assert logged(answered) == ["sla_warning", "sla_breach", "sla_escalated"]


def test_breach_and_escalation_are_emailed_by_default() -> None:
    from app.services.notifications import EMAIL, EVENTS

    assert EMAIL in EVENTS["sla_breach"].channels and EMAIL in EVENTS["sla_escalated"].channels
    assert EMAIL not in EVENTS["sla_warning"].channels
