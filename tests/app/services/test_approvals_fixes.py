"""Fixes of the issue-15 attack findings in the approvals engine, by kind:
decisions at the same moment (409, never a 500), requests of an approver who left
(re-assigned on deactivation; admins as a backstop), one person never deciding two steps
(every fallback branch; nobody left → conflict)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import Customer, Notification
from app.models.approvals import ApprovalAction, ApprovalPolicy, ApprovalRequest, ApprovalStep
from app.models.dictionaries import CustomerLevel
from app.models.marketing import Campaign
from app.models.org import CrmUser
from app.services import accounts, approvals, campaigns, customers
from app.services.errors import NotFound, RuleViolation
from tests.concurrency import at_once
from tests.conftest import user_id


def _user(name: str) -> Any:
    return db.session.get(CrmUser, user_id(name))


def _steps(*steps: ApprovalStep) -> None:
    for policy in db.session.scalars(select(ApprovalPolicy).where(ApprovalPolicy.kind == "customer.level")):
        policy.steps = list(steps)
    db.session.commit()


def _hold_level(pk: int, who: str = "rep_a") -> int:
    customer = db.session.get(Customer, pk)
    level = db.session.scalars(select(CustomerLevel).where(CustomerLevel.id != (customer.level_id or 0))
                               .order_by(CustomerLevel.id)).first()
    saved = customers.save_customer({"level": level}, _user(who), pk=pk, version=customer.version)
    db.session.commit()
    return saved.held_for_approval[0].id


def _current(rid: int) -> list[int]:
    request = db.session.get(ApprovalRequest, rid)
    return sorted(a.user_id for a in request.approvers if a.step == request.step)


def _decide_at_once(app: Any, *calls: Any) -> list[str]:
    """Run each call (a function of no arguments) in its own worker at the same moment."""
    pending = list(calls)

    def work() -> str:
        call = pending.pop()
        try:
            call()
            db.session.commit()
            return "ok"
        except RuleViolation as exc:
            db.session.rollback()
            return type(exc).__name__

    return at_once(app, work, count=len(calls))


# --- 1. decisions at the same moment ------------------------------------------------------------


@pytest.mark.parametrize("other", ["reject", "withdraw"])
def test_approve_and_another_decision_at_once_decide_once(app: Any, make_customer: Any, department_managers: Any,
                                                          other: str) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        rid = _hold_level(pk)
        db.session.remove()
    second = {"reject": lambda: approvals.reject(rid, _user("manager"), "no"),
              "withdraw": lambda: approvals.withdraw(rid, _user("rep_a"))}[other]
    results = _decide_at_once(app, lambda: approvals.approve(rid, _user("manager")), second)
    assert results.count("ok") == 1 and set(results) <= {"ok", "StaleRecord", "NotFound", "RuleViolation"}, results
    with app.app_context():
        actions = db.session.scalars(select(ApprovalAction.action).where(ApprovalAction.request_id == rid)).all()
        decisions = [a for a in actions if a in ("approved", "rejected", "withdrawn")]
        assert len(decisions) == 1, actions
        level = db.session.get(Customer, pk).level_id
        assert (level is not None) == (decisions == ["approved"])


def test_two_status_changes_of_a_campaign_at_once_are_one_change(app: Any, department_managers: Any) -> None:
    with app.app_context():
        for policy in db.session.scalars(select(ApprovalPolicy).where(ApprovalPolicy.kind == campaigns.KIND)):
            db.session.delete(policy)
        db.session.commit()
        owner = _user("manager")
        item = campaigns.save_campaign({"name": "展会", "starts_on": date(2026, 3, 1), "ends_on": date(2026, 3, 3),
                                        "form": "offline", "budget": Decimal("100.00")}, owner)
        campaigns.submit(item.id, owner)
        db.session.commit()
        cid, version = item.id, item.version
        db.session.remove()
    results = _decide_at_once(app, lambda: campaigns.change_status(cid, _user("manager"), campaigns.RUNNING, version=version),
                              lambda: campaigns.change_status(cid, _user("manager"), campaigns.CANCELLED, version=version))
    assert sorted(results)[0] == "RuleViolation" or "StaleRecord" in results, results
    assert results.count("ok") == 1, results
    with app.app_context():
        assert db.session.get(Campaign, cid).status in ("running", "cancelled")


def test_the_screen_shows_the_409_of_a_decision_made_meanwhile(app: Any, client: Any, auth: Any,
                                                                 make_customer: Any, department_managers: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        rid = _hold_level(pk)
    real = approvals._claim

    def someone_else_first(request: ApprovalRequest) -> None:
        db.session.execute(update(ApprovalRequest).where(ApprovalRequest.id == request.id)
                           .values(version=ApprovalRequest.version + 1)
                           .execution_options(synchronize_session=False))
        real(request)

    monkeypatch.setattr(approvals, "_claim", someone_else_first)
    auth.login("manager")
    answer = client.post(f"/approvals/approve/{rid}", data={"comment": "ok"}, follow_redirects=True)
    assert answer.status_code == 200
    assert "at the same moment" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(ApprovalRequest, rid).status == approvals.PENDING


# --- 2. an approver who leaves ------------------------------------------------------------------


def test_the_expiry_job_hands_the_request_of_a_departed_manager_to_the_next_approver(
        app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        rid = _hold_level(pk)
        assert _current(rid) == [user_id("manager")]
        _user("manager").expires_on = date.today() - timedelta(days=2)
        db.session.commit()
        assert accounts.deactivate_expired() == 1
        assert _current(rid) == [user_id("admin")]  # East has no parent: the admins
        assert [r.id for r in approvals.waiting_for(_user("admin"))] == [rid]
        assert approvals.waiting_for(_user("manager")) == []
        actions = db.session.scalars(select(ApprovalAction).where(ApprovalAction.request_id == rid,
                                                                  ApprovalAction.action == "reassigned")).all()
        assert len(actions) == 1 and "manager" in actions[0].comment and "admin" in actions[0].comment
        told = db.session.scalars(select(Notification.user_id).where(
            Notification.event == "approval_waiting", Notification.record_id == rid)).all()
        assert user_id("admin") in told


def test_a_user_switched_off_outside_the_orm_leaves_the_request_to_admins_who_did_not_decide(
        app: Any, make_customer: Any, department_managers: Any) -> None:
    """Defence in depth: the admins decide a request whose current approvers are all
    inactive — but not an admin who approved an earlier step of it."""
    pk, other = make_customer("rep_a"), make_customer("rep_a")
    with app.app_context():
        _steps(ApprovalStep(position=0, approver="user", user_id=user_id("admin")),
               ApprovalStep(position=1, approver="user", user_id=user_id("manager")))
        twice, once = _hold_level(pk), _hold_level(other)
        approvals.approve(twice, _user("admin"))
        db.session.commit()
        db.session.execute(update(CrmUser).where(CrmUser.id == user_id("manager")).values(active=False))
        db.session.commit()
        waiting = [r.id for r in approvals.waiting_for(_user("admin"))]
        assert twice not in waiting and once in waiting
        with pytest.raises(NotFound):
            approvals.approve(twice, _user("admin"))
        db.session.rollback()


# --- 3. one person, two steps -------------------------------------------------------------------


@pytest.mark.parametrize("second", ["manager", "role"])
def test_the_step_one_approver_never_gets_step_two(app: Any, make_customer: Any, department_managers: Any,
                                                   second: str) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        role_id = _user("manager").roles[0].id
        _steps(ApprovalStep(position=0, approver="manager"),
               ApprovalStep(position=1, approver=second, role_id=role_id if second == "role" else None))
        rid = _hold_level(pk)
        approvals.approve(rid, _user("manager"))
        db.session.commit()
        assert db.session.get(ApprovalRequest, rid).status == approvals.PENDING
        assert user_id("manager") not in _current(rid) and user_id("rep_a") not in _current(rid)
        with pytest.raises(NotFound):
            approvals.approve(rid, _user("manager"))


def test_nobody_left_ends_the_request_in_a_conflict(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        _steps(ApprovalStep(position=0, approver="manager"),
               ApprovalStep(position=1, approver="user", user_id=user_id("admin")),
               ApprovalStep(position=2, approver="manager"))
        rid = _hold_level(pk)
        approvals.approve(rid, _user("manager"))
        approvals.approve(rid, _user("admin"))
        db.session.commit()
        request = db.session.get(ApprovalRequest, rid)
        assert request.status == approvals.CONFLICT and "Nobody left" in request.outcome
        assert db.session.get(Customer, pk).level_id is None
