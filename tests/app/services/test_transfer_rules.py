"""Transfer rules (转派规则, issue 16): by type, category and keyword to a team, then round robin
across its members, least loaded, or the team's queue; no rule: the general queue."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer
from app.models.org import CrmUser, Department
from app.models.service import Priority, Ticket, TicketType, TransferRule
from app.services import tickets
from tests.app.services.test_tickets import fake_sla  # noqa: F401  (fixture)
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai", "fake_sla")


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def department(name: str) -> Department:
    return db.session.scalar(select(Department).where(Department.name == name))


def ticket_type(code: str) -> TicketType:
    return db.session.scalar(select(TicketType).where(TicketType.code == code))


def rule(name: str, team: str, position: int = 0, **fields: Any) -> TransferRule:
    item = TransferRule(name=name, team=department(team), position=position, **fields)
    db.session.add(item)
    db.session.commit()
    return item


def new_ticket(customer_id: int, subject: str = "Question", type_code: str = "consult", **values: Any) -> Ticket:
    item = tickets.save_ticket({"customer": db.session.get(Customer, customer_id), "subject": subject,
                                "ticket_type": ticket_type(type_code),
                                "priority": db.session.scalar(select(Priority).where(Priority.code == "low")),
                                **values}, user("admin"))
    db.session.commit()
    return item


@pytest.fixture
def second_agent(ctx: Any) -> Any:
    """A second active member of the Service department (removed after the test by conftest)."""
    sm = appbuilder.sm
    person = sm.add_user("agent_2", "Agent", "Two", "agent2@example.com", sm.find_role("Customer Service"),
                         password="Test-Pass-1234")
    db.session.get(CrmUser, person.id).department = department("Service")
    db.session.commit()
    return person


def test_a_rule_by_type_sends_to_the_team_and_its_member(ctx: Any, make_customer: Any) -> None:
    made = rule("Complaints to service", "Service", ticket_type=ticket_type("complaint"))
    cid = make_customer("rep_a")
    item = new_ticket(cid, type_code="complaint")
    assert item.team_id == department("Service").id and item.assignee_id == user_id("service")
    assert item.transfer_rule_id == made.id and item.status == "assigned"
    other = new_ticket(cid, type_code="consult")
    assert other.team_id is None and other.assignee_id is None and other.status == "new"


def test_keywords_match_case_and_width_insensitively_in_subject_or_description(ctx: Any,
                                                                              make_customer: Any) -> None:
    rule("Technical", "Service", keywords="ERROR\n无法开机\n")
    cid = make_customer("rep_a")
    assert new_ticket(cid, subject="Ｅｒｒｏｒ 500 on login").team_id == department("Service").id
    assert new_ticket(cid, subject="Device", description="设备无法开机了").team_id == department("Service").id
    assert new_ticket(cid, subject="Price question").team_id is None


def test_rules_are_tried_by_position_and_all_conditions_must_hold(ctx: Any, make_customer: Any) -> None:
    rule("South complaints about delivery", "South", position=1, ticket_type=ticket_type("complaint"),
         keywords="delivery", strategy="none")
    rule("All complaints", "Service", position=2, ticket_type=ticket_type("complaint"))
    cid = make_customer("rep_a")
    first = new_ticket(cid, subject="Late delivery", type_code="complaint")
    assert first.team_id == department("South").id and first.assignee_id is None  # the team's queue
    second = new_ticket(cid, subject="Rude staff", type_code="complaint")
    assert second.team_id == department("Service").id


def test_category_matches_folded(ctx: Any, make_customer: Any) -> None:
    rule("Billing", "Service", category="Billing")
    cid = make_customer("rep_a")
    assert new_ticket(cid, category="billing").team_id == department("Service").id
    assert new_ticket(cid, category="shipping").team_id is None


def test_round_robin_takes_turns_across_two_members(ctx: Any, make_customer: Any, second_agent: Any) -> None:
    rule("Round robin", "Service", strategy="round_robin")
    cid = make_customer("rep_a")
    got = [new_ticket(cid).assignee_id for _ in range(4)]
    assert got == [user_id("service"), second_agent.id, user_id("service"), second_agent.id]


def test_an_inactive_member_is_skipped(ctx: Any, make_customer: Any, second_agent: Any) -> None:
    rule("Round robin", "Service", strategy="round_robin")
    db.session.get(CrmUser, user_id("service")).active = False
    db.session.commit()
    try:
        cid = make_customer("rep_a")
        assert {new_ticket(cid).assignee_id for _ in range(2)} == {second_agent.id}
    finally:
        db.session.get(CrmUser, user_id("service")).active = True
        db.session.commit()


def test_least_loaded_picks_the_member_with_fewest_open_tickets(ctx: Any, make_customer: Any,
                                                                second_agent: Any) -> None:
    cid = make_customer("rep_a")
    service = department("Service")
    for _ in range(2):  # the first agent has two open tickets already
        new_ticket(cid, assignee=user("service"), team=service)
    rule("Least loaded", "Service", strategy="least_loaded")
    assert new_ticket(cid).assignee_id == second_agent.id
    assert new_ticket(cid).assignee_id == second_agent.id  # 2 vs 1
    tie = new_ticket(cid)  # 2 vs 2: the lower id
    assert tie.assignee_id == min(user_id("service"), second_agent.id)


def test_a_given_team_or_assignee_skips_the_rules(ctx: Any, make_customer: Any) -> None:
    rule("Everything to South", "South")
    cid = make_customer("rep_a")
    assert new_ticket(cid, team=department("Service")).team_id == department("Service").id
    assert new_ticket(cid, assignee=user("rep_a")).transfer_rule_id is None


def test_an_inactive_rule_is_ignored(ctx: Any, make_customer: Any) -> None:
    rule("Off", "Service", active=False)
    assert new_ticket(make_customer("rep_a")).team_id is None


def test_two_tickets_at_the_same_moment_go_to_two_members_in_turn(app: Any, ctx: Any, make_customer: Any,
                                                                  second_agent: Any) -> None:
    from tests.concurrency import at_once

    rule("Round robin", "Service", strategy="round_robin")
    cid = make_customer("rep_a")
    agent_2 = second_agent.id
    db.session.commit()

    def work() -> int:
        item = new_ticket(cid)
        return item.assignee_id

    got = at_once(app, work)
    assert sorted(got) == sorted([user_id("service"), agent_2])


def test_a_member_who_may_not_write_tickets_never_gets_one(ctx: Any, make_customer: Any) -> None:
    sm = appbuilder.sm
    reader = sm.add_user("reader_s", "Reader", "Service", "reader@example.com", sm.find_role("Read Only"),
                         password="Test-Pass-1234")
    db.session.get(CrmUser, reader.id).department = department("Service")
    db.session.commit()
    rule("Round robin", "Service", strategy="round_robin")
    cid = make_customer("rep_a")
    assert {new_ticket(cid).assignee_id for _ in range(3)} == {user_id("service")}


def test_a_rule_whose_team_cannot_see_the_customer_is_passed_over(ctx: Any, make_customer: Any) -> None:
    """Complaints to South first (its reps see only South's customers), then to Service: an East
    customer's complaint is not parked in South's queue where nobody may work it; a South
    customer's complaint goes to South's rep."""
    rule("Complaints to South", "South", position=1, ticket_type=ticket_type("complaint"))
    rule("Complaints to service", "Service", position=2, ticket_type=ticket_type("complaint"))
    east = new_ticket(make_customer("rep_a"), type_code="complaint")
    assert east.team_id == department("Service").id and east.assignee_id == user_id("service")
    south = new_ticket(make_customer("rep_c"), type_code="complaint")
    assert south.team_id == department("South").id and south.assignee_id in (user_id("rep_c"), user_id("manager_s"))
